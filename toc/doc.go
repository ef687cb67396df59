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
//   - EStargzAnnotations and ParseEStargzAnnotations handle the layer
//     descriptor annotations that pin the TOC digest.
//
// For zstd:chunked:
//
//   - ZstdChunkedFooter and ParseFooter encode and decode the 64-byte footer
//     (and accept the 40-byte one); AppendSkippableFrame and
//     SkippableFramePayload wrap and unwrap the frames around the TOC and
//     tar-split;
//   - MarshalZstdChunked and UnmarshalZstdChunked convert between TOC JSON
//     and the model; DecodeZstdChunked decodes a compressed TOC in memory, and
//     DecodeZstdChunkedFrom one still arriving, decoding as it comes;
//   - the tar-split that rebuilds the original tar is written by a
//     TarSplitWriter, read by a TarSplitReader (NewTarSplitReader for
//     verified bytes, NewTarSplitReaderFrom for a stream) and checked
//     against the TOC by CheckTarSplit, record by record: the tar stream
//     it rebuilds must hold exactly the TOC's entries, as archive/tar and
//     GNU tar read it; CheckTarSplitPosition bounds the tar-split a footer
//     claims by what the TOC's entries can need, before it is fetched;
//   - ZstdChunkedAnnotations and ParseZstdChunkedAnnotations handle the
//     three descriptor annotations.
//
// Everything here parses untrusted bytes: decoders validate structure
// (names, chunk tiling, offsets), bound memory with DecodeOption limits,
// never panic, and report problems with errors wrapping the sentinels
// ErrInvalidFooter, ErrInvalidTOC, ErrTOCTooLarge and ErrUnsupportedVersion.
// Tar-split readers take TarSplitOption limits: the uncompressed stream
// (DefaultMaxTarSplitSize, 1 GiB, and never more than
// MaxTarSplitSizeFor the TOC), one record (DefaultMaxTarSplitRecordSize,
// 4 MiB) and one entry's tar headers (DefaultMaxTarHeaderSize, 1 MiB);
// their errors wrap ErrInvalidTarSplit, ErrTarSplitMismatch and
// ErrTarSplitTooLarge. Error messages quote input cut short
// (internal/untrusted).
// A decoded TOC is only as trustworthy as its Digest: callers compare it to
// the digest pinned by the layer's annotations before using it.
//
// The package does no I/O beyond the io.Reader or io.Writer it is given, keeps no
// global state, and its functions are safe for concurrent use.
package toc
