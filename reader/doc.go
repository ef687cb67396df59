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
// Given the layer descriptor's annotations (WithAnnotations) as the writer
// package makes them, Open fetches index and footer in one request of
// exactly their bytes, whatever the index's size: a 1.6 GB layer has a
// 3.5 MB eStargz TOC, a layer of 300,000 files one of 16 MB. Without
// them it fetches the blob's last WithTailHint bytes (1 MiB by default),
// and, if the footer there says the index starts before them, exactly the
// bytes missing in one more request: never more than two round trips. The
// blob's size comes first, from the fetcher: give an HTTP fetcher the
// descriptor's size (fetcher.WithSize), or it asks for it with a request
// of its own.
//
// The index position annotation (toc.AnnotationIndexPosition) is trusted
// only to say where to fetch; what Open fetches is read and verified from
// its footer as without it. One that does not end at the blob's end, or
// spans more than the largest compressed TOC that WithMaxTOCSize admits
// plus a footer (the limit, a 64th more and 64 KiB, for incompressible
// data: 152.4 MiB by default), fails Open with ErrCorrupt (the latter
// also with toc.ErrTOCTooLarge) before anything is fetched. One that
// starts too late costs the second request above; too early, bytes.
//
// A file's own digest (toc.Entry.Digest) is verified too. Open checks
// that the digest of a file of one chunk is that chunk's, and that of an
// empty file the digest of no bytes (zstd:chunked leaves it empty, which
// is allowed), so that verifying the chunk verifies the file. The content
// of a file of several chunks is hashed as it is read from start to end,
// in order, by ReadFile, by Read or WriteTo of an open file (io.ReadAll,
// io.Copy) or by Layer.WriteTar; if it does not match, the read that
// would return the file's last bytes fails with ErrChunkDigest instead,
// and so does every read of the file after it. Reads of part of a file,
// ReadAt included, are verified chunk by chunk until a whole read has
// checked the file. A file is hashed whole at most once per Layer.
//
// Open bounds what an index may cost, with options whose defaults real
// layers stay far below: WithMaxTOCSize, the decompressed index (150 MiB,
// DefaultMaxTOCSize); WithMaxChunkSize, the bytes a read decompresses and
// holds for one chunk, and the compressed frame it comes from (64 MiB,
// DefaultMaxChunkSize; an index with a larger chunk fails Open with
// ErrCorrupt, but for chunks of zeros, which reads serve without building
// them); WithMaxNameLength, the bytes of one name or link
// target (4096, PATH_MAX); WithMaxPathDepth, its elements (256);
// WithMaxImpliedDirs, the directories names imply without the index
// listing them (1 Mi); WithMaxNameBytes, all names and link targets
// together (128 MiB). The name limits are checked as the index is
// decoded, before the directory tree is built, and an index beyond any
// of them fails Open with an error matching ErrCorrupt and
// toc.ErrInvalidTOC (a name too long or deep) or toc.ErrTOCTooLarge.
// Looking a name up walks the tree from the directory the previous lookup
// ended in, when that lies on its path, so that fs.WalkDir takes a step
// or two per directory, however deep.
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
// Layer.StartPrefetch loads the chunks of files a workload is expected to
// read into the cache before it reads them. However large what it is
// asked for, it holds at most WithPrefetchBuffer (16 MiB,
// DefaultPrefetchBuffer) of compressed bytes fetched or being fetched and
// not yet decompressed and cached: a link faster than decompression
// waits, rather than piling a whole file of tens of MB up in memory.
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
// the manifest-checksum annotation does; behind the 48-byte footer, which
// does not locate the tar-split, Open takes it from the frame after the
// TOC, fetched with it). For zstd:chunked, WithAnnotations takes the layer
// descriptor's annotations instead, in either spelling of their keys
// (spellings that disagree are refused): Open then fetches the TOC and
// tar-split in one request without reading the footer. Annotations that
// locate the TOC but no tar-split (as skopeo 1.9 and podman 4.3 write
// them) make the one request start at the TOC's frame, whatever
// WithTailHint says: it brings the TOC, the footer and any tar-split
// between them, unless more lies there than the tar-split bound below
// lets come with a TOC (then the tail is WithTailHint's). Open checks a
// zstd:chunked tar-split against the TOC before returning, as it arrives,
// in bounded memory (zstdchunked.CheckTarSplit: the tar it rebuilds holds exactly
// the TOC's entries), and Layer.WriteTar rebuilds the layer's original
// tar stream and DiffID from it, streaming. What a footer or annotation
// claims is bounded before it is fetched: the TOC by WithMaxTOCSize, the
// tar-split by WithMaxTarSplitSize (1 GiB, DefaultMaxTarSplitSize) and by
// what the verified TOC's entries can need (zstdchunked.CheckTarSplitPosition); a
// tar-split claiming more than twice the TOC's size and 1 MiB is fetched only
// once the TOC is verified. A new format plugs in where Open
// dispatches on the footer's format and where a Layer picks a
// decompressor for its frames. Blobs whose index lives elsewhere (eStargz
// with an external TOC) are reported as ErrUnsupportedFormat.
//
// An unmodified gzip layer (one member or several) or uncompressed tar
// layer opens with its soci-snapshotter zTOC (WithZtoc; toc/soci makes and
// decodes them), through the same API: files, ReadAt, prefetch, read-ahead,
// FetchAll and the cache. Its frames are the zTOC's spans: a read fetches
// the spans it needs and checks each span's compressed bytes against its
// sha256 before it decompresses it from its checkpoint. The cache keeps the
// compressed spans, by span digest, checked when taken from it; a layer
// keeps the spans it decoded last in memory (32 MiB of them, and the last
// one whatever its size), since the files of a span are read together.
//
// soci-snapshotter trusts a checkpoint's window (the 32 KiB of output a
// span resumes after): a forged one yields wrong bytes that pass every
// span digest. This reader notes, while it decodes a span, which bytes
// derive from the window, and before it returns any of them it checks the
// window against the end of the span before, decoded from its own
// checkpoint (and so on back, as far as those bytes depend on windows in
// turn; span 0 starts at the gzip header, which it parses). A window that
// does not match fails the read with ErrWindow; bytes that derive from no
// window are verified by the span digest alone. A span's decoding must
// end exactly at the next checkpoint's bit position, or the read fails
// with ErrCorrupt. Verified windows are remembered by the layer.
//
// What is verified when, for a zTOC layer. Before a read returns any byte
// of a regular file (through Read, ReadAt, WriteTo or ReadFile, a file
// of no bytes included), the reader checks the file's own tar headers:
// zTOC entries follow in tar order, so entry i's headers fill the tar
// stream from the block after entry i-1's data to entry i's data. It
// loads those bytes as a read's (span digest, window), usually from the
// span the file's data starts in and so at no extra request, and checks
// that a tar reader reads them as exactly one entry with the name, type,
// size, mode, owner, link target, times, device numbers and extended
// attributes the layer serves for it (and, for a hard link, the same for
// the entry whose content it shows). Otherwise the read fails with
// ErrIndexMismatch (which wraps ErrCorrupt) and returns no byte; the
// outcome is kept per file. So a lazy read verifies the span digests,
// the windows its bytes derive from and the file's own headers. Metadata
// (Stat, ReadDir, ReadLink) is served from the zTOC unchecked.
//
// Once the whole blob has been fetched (FetchAll, WithBackgroundFetch,
// WriteTar, WithRequireLayerDigest), everything is: every checkpoint
// (position and window) against the layer decoded from its start, the
// blob against WithLayerDigest, and the tar the blob holds against the
// file table, as the zstd:chunked tar-split check does: exactly the
// zTOC's entries, in order, with equal headers (raw names, link targets
// and all PAX records included), nothing between entries but their
// headers and padding, and only the end of the archive and zeros after
// the last. A mismatch is ErrWindow, ErrCorrupt, ErrLayerDigest or
// ErrIndexMismatch; then every file counts as checked.
// WithRequireLayerDigest makes Open do this before it returns, so that
// nothing is served lazily from a layer nobody vouched for whole.
// WriteTar writes the decompressed blob, which is the original tar, each
// span checked before its bytes are written.
//
// What lazily stays trusted, as far as WithTOCDigest vouches for the
// zTOC: where the chain of entries starts. A file's headers are checked
// where the previous entry's data ends by the zTOC, not from the tar's
// start, so a zTOC that lists bytes of the layer that parse as tar
// entries without being the layer's own (a tar archive stored as a file
// in the layer) is caught only by the whole check; so are entries the
// zTOC leaves out (only the read of the entry after one fails lazily),
// metadata of files never read, and chains of hard links beyond the
// link and its content. One entry's headers may not exceed 1 MiB
// (zstdchunked.DefaultMaxTarHeaderSize), checked before they are
// fetched.
//
// What a zTOC claims is bounded before anything is fetched: toc/soci's
// decoding bounds (zTOC size 256 MiB, files 2^21, PAX records 2^21,
// strings 128 MiB, spans 65536, layer size 256 GiB, see its package
// documentation), the name limits above, the blob's real size (the zTOC's
// compressed size must equal it, every span must lie in it, after the
// span before), and WithMaxChunkSize (64 MiB by default, 16 times soci's
// default 4 MiB span): a span that decompresses to more, or is larger
// compressed, or claims more than deflate can make of its bytes, fails
// Open with ErrCorrupt. A read then holds at most that per span it decodes
// at once, plus 64 KiB to find the bytes that derive from its window.
//
// A plain layer (a gzip or zstd stream or a tar archive without a seekable
// format's footer) is reported as ErrNotSeekable, so that a caller can
// pull it whole instead. Open finds this out from the tail it fetches
// anyway (see WithTailHint), which ends in no footer, and the blob's first
// 512 bytes, which cost one more small request unless the tail holds them.
package reader
