// Package writer turns a tar stream into a seekable layer blob that lazy
// readers can fetch piece by piece: eStargz (gzip-compatible, the default)
// or zstd:chunked (zstd-compatible, WithFormat(toc.FormatZstdChunked)).
//
// Build reads a plain, gzip or zstd tar stream and writes a blob that
// gunzips, as a whole, to a tar stream holding the same entries followed by
// the TOC entry stargz.index.json. Each entry's header bytes are copied from
// the input unchanged (USTAR, PAX and GNU headers, long names, xattrs), with
// one exception: a sparse file (GNU tar --sparse: an old GNU header or a PAX
// 0.0, 0.1 or 1.0 sparse map) is written as the regular file that tar
// readers extract, its holes filled with zeros, under a header re-encoded
// without the sparse map. An input that is already eStargz loses its old
// TOC and landmarks, which Build writes anew.
//
// The blob is a series of gzip members. A new member starts at the blob's
// start, at every chunk of a non-empty regular file (files larger than the
// chunk size are split), at each landmark, at the TOC and at the footer;
// tar headers go into whichever member is open. With WithMinChunkSize,
// small files share members. Each chunk's sha256 is in the TOC, so a reader
// can fetch and verify any chunk on its own.
//
// Result.Annotations holds what belongs on the layer descriptor: the
// format's own annotations (eStargz: the TOC digest and uncompressed size;
// zstd:chunked: the manifest checksum and the TOC and tar-split
// positions), and, for both formats, toc.AnnotationIndexPosition: the
// range from the index's first byte to the blob's end, footer included,
// so that a reader given the descriptor fetches index and footer in one
// request however large the index is (a reader's default tail of 1 MiB
// holds the eStargz TOC of the Go toolchain's 15,000 files, not that of
// a layer ten times larger).
//
// Prioritised files (WithPrioritizedFiles) come first, followed by a
// .prefetch.landmark entry: a reader that fetches the blob up to the
// landmark's member has every file a container is expected to need at
// start. Without prioritised files the first entry is .no.prefetch.landmark.
//
// Members are compressed in parallel, each independently, and written in
// order, so the output is the same whatever the concurrency. Memory is
// bounded by the number of members in flight (about twice the concurrency)
// times the chunk size, not by the layer size, plus what the index needs:
// each entry is kept as a compact record (some 25 bytes for a small file)
// with its chunks' digests (32 bytes each), and the TOC is encoded twice,
// to learn its size and digest and then into the blob, rather than held;
// zstd:chunked also holds its compressed tar-split until the end. A layer
// of a million small files builds in under 256 MiB. Result.TOC expands the
// records into the model on demand. Reordering needs random access to the
// input, so Build then spools the decompressed input to a temporary file,
// unless the input is an uncompressed file it can read in place (see
// WithPrioritizedFiles); otherwise it streams.
//
// # zstd:chunked
//
// A zstd:chunked blob decompresses, with any zstd reader, to the input tar
// byte for byte, so its DiffID is the input's digest. The tar's bytes are
// cut into independent zstd frames: every chunk of a regular file's
// content is a frame of its own, and the headers, padding and end of the
// archive between contents fill the frames between them. Chunks are
// content-defined (see below; WithFixedChunks cuts chunks of the chunk
// size instead, as estargz does), and runs of at least 1 KiB of zeros
// inside a file become "zeros" chunks that readers never fetch. The TOC
// (entries named as the tar spells them), the tar-split that rebuilds the
// tar's headers, and the footer follow in skippable frames; Result carries
// the annotations that locate them. The input's order is kept, so
// prioritised files and shared frames (WithMinChunkSize) are refused, as
// are PAX global headers, which containers/storage cannot index, and sparse
// files: the blob would have to hold the sparse map and only the data it
// lists, yet a tar-split file record stands for the file's expanded size,
// so no reader could rebuild the tar (containers/storage refuses old GNU
// sparse files and writes PAX ones corrupt). Build fails with
// ErrUnsupportedEntry naming the entry; expand sparse files first, or write
// eStargz.
//
// # zstd:chunked readers
//
// Readers of three generations are in use, and one blob serves them all,
// so Build has no option for it. Readers find the TOC either from the
// layer descriptor's annotations or from the footer, never both:
//
//	reader                            needs                                     Build's blob
//	containers/storage >= v1.54       io.github.containers.zstd-chunked.*       pulled partially
//	                                  manifest and tarsplit-position keys;
//	                                  the tar-split digest from the TOC
//	containers/storage v1.47-v1.53    the same, and the tarsplit-checksum key   pulled partially
//	containers/storage v1.44-v1.46    io.github... manifest keys, no tar-split  pulled partially
//	containers/storage <= v1.43       io.containers.zstd-chunked.* manifest     pulled partially
//	  (podman 4.3, Debian 12)         keys only
//	stargz-snapshotter, ctr-remote    the 48-byte footer only (magic GnUlInUx)  read
//	  (estargz/zstdchunked)
//	lazylayer's reader                annotations of either spelling, or        read, with its
//	                                  either footer                             tar-split
//
// containers/storage reads a footer only when the manifest-position
// annotation is missing, so Build writes the 48-byte footer, the one
// stargz-snapshotter requires, and annotations in every spelling: the
// manifest checksum and position under both keys, the tar-split position,
// and the tar-split checksum. The 48-byte footer has no room for the
// tar-split, which sits in the frame between the TOC and the footer; a
// reader without annotations finds it there (zstdchunked.LocateTarSplit)
// and trusts it only if the TOC pins its digest. The tests of interop/e2e
// run podman 4.3 and ctr-remote 0.12 on Build's blobs; the rows of later
// containers/storage versions come from their source, and the interop
// module checks v1.59.1's annotation parser and tar-split rules.
//
// # Chunks of zstd:chunked files
//
// Chunk boundaries are those of containers/storage's compressor: a bup
// rolling sum over 64 bytes marks one where its low 16 bits are all ones,
// about every 64 KiB. containers/storage cuts a chunk at each; Build cuts
// one at the first boundary at least WithContentChunkMin bytes (1 MiB by
// default) past the chunk's start, or at the chunk size (WithChunkSize,
// 4 MiB by default). Files of up to 1 MiB are thus one frame, and larger
// files have frames of about 1.06 MiB, each ending where one of
// containers/storage's chunks ends. What that trades:
//
//   - Size and time. Every frame starts without history, and costs a
//     frame header and entropy tables. Against containers/storage's
//     chunks, the default makes blobs 2.5% (the Go toolchain) to 4.8% (a
//     JDK, with its 128 MB lib/modules) smaller, and Build 8% to 18%
//     cheaper in CPU: fewer frames, and the sum rolls over only the last
//     64 KiB or so of each chunk. A minimum of 2 MiB would save another 0.5% of the JDK's
//     size and 5% of its CPU time.
//   - Deduplication. containers/storage reuses a file found in another
//     local layer by its digest, whatever the chunks, and that works
//     alike. When a file changed, it can still reuse the chunks of it
//     whose digests it finds elsewhere: that needs chunks cut alike, so
//     with the default it finds them in files over 1 MiB of layers Build
//     wrote with the same minimum, at about 1 MiB granularity, not in
//     layers containers/storage wrote. WithContentChunkMin(0) cuts containers/storage's chunks.
//   - Lazy reads. A read decompresses and verifies every chunk it
//     touches: a cold 4 KiB read at a random place in a large file costs
//     about 1.1 ms with 1 MiB chunks and 4 to 5 ms with 4 MiB ones, and a
//     small read of a file under 1 MiB fetches the whole file. Readers cap
//     the chunk they accept (reader.DefaultMaxChunkSize, 64 MiB), far
//     above the 4 MiB chunk size.
package writer
