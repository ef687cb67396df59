// Package overlay stacks the layers of a container image into one
// read-only io/fs file system, with the semantics an OCI runtime gets
// from overlayfs: upper layers win, whiteout files (".wh.<name>") and
// opaque directories (holding ".wh..wh..opq") hide what lower layers
// hold, and marker files are never visible.
//
// Any fs.FS serves as a layer: os.DirFS, fstest.MapFS, or a lazy layer
// of package reader, which fetches file contents only when they are read.
// Symbolic links are resolved inside the image, as a chrooted process
// sees them: an absolute target starts again at the image root and ".."
// never climbs above it. FS.Resolve says which layer provides a name and
// where, once every link is followed; package prefetch plans through it.
//
// Names from the layers are untrusted, and every resolution is bounded:
// a name or link target longer than 4096 bytes (PATH_MAX) fails with
// "file name too long", as does a resolution that visits more than 1024
// path elements, links included; more than 40 symbolic links (Linux's
// limit) fail with ErrSymlinkLoop. A lookup costs a few Lstat calls per
// layer for each element it visits; a Resolver remembers the directories
// it passed through, for callers that resolve many names.
package overlay
