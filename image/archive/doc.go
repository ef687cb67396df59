// Package archive reads the image archives that docker save and podman
// save write, as an image source (package image's Source), in place: no
// member is extracted to disk.
//
// Two flavours are read:
//
//   - a docker-archive: a tar holding manifest.json, a list of images
//     each with its Config member, its RepoTags and its Layers members.
//     Docker before version 25 stores a layer as <id>/layer.tar, Docker 25
//     and later as blobs/sha256/<hex> (beside an OCI index.json, which is
//     not used: manifest.json names the images for every version), podman
//     as <hex>.tar, with symbolic links from <id>/layer.tar. Such an
//     archive has no manifest of its own, so [Archive.Resolve] makes an
//     OCI image manifest: the config and each layer are described by the
//     sha256 digest and size of their member, and each layer's media type
//     says the compression its first bytes show (gzip, zstd, or none: a
//     plain tar). Computing the digests reads the image's members once, at
//     the first Resolve, Manifest or Blob call, in parallel (GOMAXPROCS
//     members at a time); [Open] reads none of them.
//   - an oci-archive: a tarred OCI image layout, as podman save
//     --format oci-archive writes it. Its index.json, manifests and blobs
//     are served as they are, and Manifest checks a manifest's size and
//     digest.
//
// [Open] names the image by reference: for a docker-archive one of its
// RepoTags, compared as image references ("busybox" is
// "docker.io/library/busybox:latest"), or "@N" for the Nth image of
// manifest.json, from 0; for an oci-archive, the
// org.opencontainers.image.ref.name annotation of its index.json entry.
// An empty reference names the only image. These are skopeo's
// docker-archive:PATH:REF and oci-archive:PATH:REF.
//
// # Untrusted archives
//
// An archive is untrusted. [Open] reads the tar's headers once, seeking
// past the data, and records where each file's data lies; it reads at
// most [DefaultMaxMembers] (16384, [WithMaxMembers]) headers of any kind,
// refuses a member name over 512 bytes (so the member table stays under 8
// MiB), a name given twice, and a sparse file, and checks that each
// member's data lies within the file. manifest.json, index.json and an
// oci-archive's manifests are read only up to [DefaultMaxManifestSize] (4
// MiB, [WithMaxManifestSize]), checked before reading. Members are named
// within the archive's root: a name or link target that leads out of it,
// or an absolute link target, names nothing, and at most 8 links are
// followed to a member. index.json is parsed as strictly as in package
// image/layout.
//
// The sentinel errors other than [ErrNotArchive] are the very values
// package image/layout exports under the same names.
//
// The fetchers Blob returns read the archive file at the member's
// offset; an [Archive] made by Open holds the file open until Close.
package archive
