// Package toc is the format layer of lazylayer: the in-memory model of a
// seekable layer's index (a TOC of entries and chunks) and the codecs that
// read and write it, one per format.
//
// A lazy reader starts from a blob's tail. ParseFooter recognises the
// format from the last MaxFooterSize bytes and says where the index lives;
// the format's decoder then turns the index into a TOC whose chunks locate
// every piece of file data in the blob (FrameOffset, FrameEnd, InnerOffset)
// and carry the digest that verifies it. A writer builds a TOC while
// compressing and encodes it with the format's encoder.
//
// For eStargz:
//
//   - EStargzFooter and ParseFooter encode and decode the 51-byte footer
//     (and accept the legacy 47-byte and external-TOC 46-byte footers);
//   - WriteEStargzTOCMember and ReadEStargzTOCMember wrap and unwrap the
//     TOC JSON in its gzip member, holding the tar entry stargz.index.json
//     (EStargzTOCTar gives the member's uncompressed bytes);
//   - MarshalEStargz and UnmarshalEStargz convert between TOC JSON and the
//     model, byte for byte as the reference implementation writes it;
//     DecodeEStargz does both steps for a member in memory, and
//     DecodeEStargzFrom for a member still arriving, decoding as it comes;
//     an EStargzEncoder and WriteEStargzTOCMemberFrom write the JSON and
//     its member entry by entry, for a writer that does not hold them;
//   - EStargzAnnotations and ParseEStargzAnnotations handle the layer
//     descriptor annotations that pin the TOC digest.
//
// For zstd:chunked:
//
//   - ZstdChunkedFooter and ParseFooter encode and decode the footer frame
//     of either generation: the 72-byte one of containers/storage and the
//     48-byte one every footer reader accepts, which does not locate the
//     tar-split (LocateZstdChunkedTarSplit finds it after the TOC);
//     AppendSkippableFrame and SkippableFramePayload wrap and unwrap the
//     frames around the TOC and tar-split;
//   - MarshalZstdChunked and UnmarshalZstdChunked convert between TOC JSON
//     and the model (a ZstdChunkedEncoder writes it entry by entry, through
//     a NewZstdWriter); DecodeZstdChunked decodes a compressed TOC in memory, and
//     DecodeZstdChunkedFrom one still arriving, decoding as it comes;
//   - the tar-split that rebuilds the original tar is written by a
//     TarSplitWriter, read by a TarSplitReader (NewTarSplitReader for
//     verified bytes, NewTarSplitReaderFrom for a stream) and checked
//     against the TOC by CheckTarSplit, record by record: the tar stream
//     it rebuilds must hold exactly the TOC's entries, as archive/tar and
//     GNU tar read it; CheckTarSplitPosition bounds the tar-split a footer
//     claims by what the TOC's entries can need, before it is fetched;
//     sparse files are refused: a tar-split records their expanded size,
//     so the tar it rebuilds would extract to other contents than the TOC
//     describes;
//   - ZstdChunkedAnnotations and ParseZstdChunkedAnnotations handle the
//     descriptor annotations, in the spellings of every generation of
//     readers.
//
// For both, IndexPositionAnnotations and ParseIndexPositionAnnotations
// handle lazylayer's own descriptor annotation, AnnotationIndexPosition
// ("offset:length"): the range at the blob's end that holds index and
// footer, which a reader fetches first, in one request, whatever the
// index's size. It only says where to fetch; nothing is trusted because
// of it.
//
// Everything here parses untrusted bytes: decoders validate structure
// (names, chunk tiling, offsets), never panic, and report problems with
// errors wrapping the sentinels ErrInvalidFooter, ErrInvalidTOC,
// ErrTOCTooLarge and ErrUnsupportedVersion. DecodeOption limits bound what
// an index may cost its decoder and its readers, and are checked as the
// index is decoded, before anything is allocated for what exceeds them:
//
//   - WithMaxTOCSize: the uncompressed index, 150 MiB
//     (DefaultMaxTOCSize); ErrTOCTooLarge;
//   - WithMaxEntries: entries, counting each chunk entry, 2 Mi
//     (DefaultMaxEntries); ErrTOCTooLarge;
//   - WithMaxNameLength: bytes of one name or link target, 4096
//     (DefaultMaxNameLength); ErrInvalidTOC;
//   - WithMaxPathDepth: elements of one name or link target, 256
//     (DefaultMaxPathDepth); ErrInvalidTOC;
//   - WithMaxImpliedDirs: parent directories the names imply without the
//     index listing them, 1 Mi (DefaultMaxImpliedDirs); ErrTOCTooLarge;
//   - WithMaxNameBytes: all names and link targets together, 128 MiB
//     (DefaultMaxNameBytes); ErrTOCTooLarge.
//
// A name too long or too deep is invalid, as a path beyond PATH_MAX is; the
// other limits are sizes that real layers stay far below.
//
// Tar-split readers take TarSplitOption limits: the uncompressed stream
// (DefaultMaxTarSplitSize, 1 GiB, and never more than MaxTarSplitSizeFor
// the TOC), one record (DefaultMaxTarSplitRecordSize, 4 MiB) and one
// entry's tar headers (DefaultMaxTarHeaderSize, 1 MiB); their errors wrap
// ErrInvalidTarSplit, ErrTarSplitMismatch and ErrTarSplitTooLarge. Error
// messages quote input cut short (internal/untrusted).
// A decoded TOC is only as trustworthy as its Digest: callers compare it to
// the digest pinned by the layer's annotations before using it.
//
// The package does no I/O beyond the io.Reader or io.Writer it is given, keeps no
// global state, and its functions are safe for concurrent use.
package toc
