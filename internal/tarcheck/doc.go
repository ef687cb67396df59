// Package tarcheck checks that a tar stream holds exactly the entries an
// index lists, as a tar reader (archive/tar, GNU tar) reads it: one
// entry's headers between one entry's data and the next, headers equal to
// the index's entries, only zeros after the end of the archive. The
// zstd:chunked tar-split check and the zTOC reader share it.
package tarcheck
