// Package reader opens seekable container layers lazily.
//
// Open reads a layer blob's footer and index through a fetcher.Fetcher,
// normally in a single request of the blob's tail (an index is decoded
// while that request's bytes still arrive), checks the index
// against the digest the caller expects, and returns a Layer: an io/fs
// file system whose file contents are fetched only when read. Each read
// fetches the compressed frames holding the chunks it needs, decompresses
// them and checks every chunk against the sha256 digest the index records
// before returning any of its bytes. With a cache.Cache (WithCache),
// verified chunks are kept by digest and shared across layers; concurrent
// reads of one frame are collapsed into one fetch.
//
// The reader trusts nothing but the index digest the caller supplies:
// truncated blobs, damaged footers, inconsistent indexes, link cycles and
// corrupted data are reported as errors that match ErrCorrupt,
// ErrTOCDigest, ErrChunkDigest, ErrLinkLoop or ErrUnverifiable under
// errors.Is, and never as panics, hangs or unverified bytes.
//
// Reads that continue where the previous read of the same open file
// ended are taken as sequential: they also load the file's next chunks, in
// the request they make anyway or in one of their own, in windows growing
// from one chunk to 16 chunks or 16 MiB. A file streamed in small pieces
// thus costs a few requests rather than one per chunk; each open file
// holds at most a window and a half of chunks read ahead. Other reads
// fetch only what they ask for. A frame whose bytes arrive damaged is
// fetched once more, alone, before a read reports the damage.
//
// Layer.FetchAll, or WithBackgroundFetch at Open, fetches the whole layer
// into the cache at low priority, pausing while reads load chunks, so that
// a running workload survives the registry going away.
//
// WithAccessObserver reports the first read of every chunk, in request
// order: a trace of what a workload needs, from which prefetch profiles
// are made.
//
// Supported formats: eStargz (including legacy stargz footers and
// min-chunk-size blobs whose chunks share gzip members) and zstd:chunked
// (both footer generations; WithTOCDigest then pins the compressed TOC, as
// the manifest-checksum annotation does). For zstd:chunked, WithAnnotations
// takes the layer descriptor's annotations instead: Open then fetches the
// TOC and tar-split in one request without reading the footer. Open checks
// a zstd:chunked tar-split against the TOC before returning, as it
// arrives, in bounded memory (toc.CheckTarSplit: the tar it rebuilds
// holds exactly the TOC's entries), and Layer.WriteTar rebuilds the
// layer's original tar stream and DiffID from it, streaming. What a
// footer or annotation claims is bounded before it is fetched: the TOC by
// WithMaxTOCSize, the tar-split by WithMaxTarSplitSize and by what the
// verified TOC's entries can need (toc.CheckTarSplitPosition); a
// tar-split claiming more than 1 MiB beyond the TOC's size is fetched
// only once the TOC is verified. A new format plugs in where Open
// dispatches on the footer's format and where a Layer picks a
// decompressor for its frames. Blobs whose index lives elsewhere (eStargz
// with an external TOC) are reported as ErrUnsupportedFormat.
package reader
