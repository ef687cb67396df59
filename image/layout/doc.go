// Package layout reads and writes OCI image layout directories, as the
// image-spec defines them: an oci-layout file of version 1.0.0, an
// index.json whose entries name images by their
// org.opencontainers.image.ref.name annotation, and blobs under
// blobs/<algorithm>/<encoded digest>. This is what skopeo's oci:DIR:REF
// transport reads and writes.
//
// A [Layout] is an image source and an image target (package image's
// Source and Target): [Layout.Resolve] picks the index.json entry of the
// name the layout was opened with, or its only entry when that name is
// empty; [Layout.Tag] adds or replaces the entry of that name.
//
// # Untrusted layouts
//
// A layout's files are untrusted. index.json is read only up to
// [DefaultMaxIndexSize] (4 MiB, [WithMaxIndexSize]), the oci-layout file
// up to 4 KiB, and a manifest up to [DefaultMaxManifestSize] (4 MiB,
// [WithMaxManifestSize]); each bound is checked against the file's size
// before it is read. index.json must be a single JSON object of schema
// version 2 whose entries all have a well-formed digest of an algorithm
// this program computes (sha256, sha384, sha512) and a size that is not
// negative: any other index is refused whole with [ErrInvalid]. A digest
// becomes a path only once checked, so it names a file inside blobs/.
// Manifest checks the size and digest of what it returns; the fetcher
// Blob returns does not check the digest, whose reader does.
//
// Every path is resolved within the layout directory (an [os.Root]): a
// symbolic link that stays inside the layout is followed, as some tools
// share blobs that way, and one that leads out of it, or is absolute, is
// refused. A blob or index that is no regular file, such as a named pipe,
// is refused without waiting on it.
//
// # Writes
//
// The layout directory and its oci-layout file are made on the first
// push. Blobs, manifests and index.json are written to a temporary file in
// the directory they belong in, synced and then renamed, so a crash or a
// failed check never leaves a partial file under its final name, and
// readers see the old index.json or the new one. A pushed blob must have
// exactly its descriptor's size and digest ([ErrDigestMismatch]).
// Concurrent pushes of one blob each rename a whole copy. Tag rewrites
// index.json under an flock of the directory on Unix, so that concurrent
// Tags of any Layouts of this process or of other processes all take
// effect; elsewhere it serialises the Tags of one Layout only.
//
// The sentinel errors ([ErrNotFound], [ErrAmbiguous], [ErrInvalid],
// [ErrTooLarge], [ErrDigestMismatch]) are the very values package
// image/archive exports under the same names.
//
// A Layout holds no open file between calls: the fetcher of a blob opens
// it for each read, so fetchers need no closing.
package layout
