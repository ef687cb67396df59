// Package ocilayout holds what an OCI image layout directory (package
// image/layout) and an OCI-flavoured image archive (package image/archive)
// share: the parsing and checking of their untrusted index.json and
// oci-layout files, the path of a blob, and the choice of an image by its
// reference name.
//
// Nothing here reads files: callers bound what they read and pass bytes.
// Errors match the sentinels of internal/ocidoc, which parses what is
// inside the blobs.
package ocilayout
