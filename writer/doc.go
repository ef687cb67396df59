// Package writer turns a tar stream into a seekable layer blob: today
// eStargz, a gzip-compatible blob that lazy readers can fetch piece by
// piece.
//
// Build reads a plain, gzip or zstd tar stream and writes a blob that
// gunzips, as a whole, to a tar stream holding the same entries followed by
// the TOC entry stargz.index.json. Each entry's header bytes are copied from
// the input unchanged (USTAR, PAX and GNU headers, long names, xattrs), with
// one exception: sparse files are written expanded, under a re-encoded
// header. An input that is already eStargz loses its old TOC and landmarks,
// which Build writes anew.
//
// The blob is a series of gzip members. A new member starts at the blob's
// start, at every chunk of a non-empty regular file (files larger than the
// chunk size are split), at each landmark, at the TOC and at the footer;
// tar headers go into whichever member is open. With WithMinChunkSize,
// small files share members. Each chunk's sha256 is in the TOC, so a reader
// can fetch and verify any chunk on its own.
//
// Prioritised files (WithPrioritizedFiles) come first, followed by a
// .prefetch.landmark entry: a reader that fetches the blob up to the
// landmark's member has every file a container is expected to need at
// start. Without prioritised files the first entry is .no.prefetch.landmark.
//
// Members are compressed in parallel, each independently, and written in
// order, so the output is the same whatever the concurrency. Memory is
// bounded by the number of members in flight (about twice the concurrency)
// times the chunk size, not by the layer size. Reordering needs random
// access to the input, so Build then spools the decompressed input to a
// temporary file; otherwise it streams.
package writer
