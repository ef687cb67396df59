// Package zstdchunked is the zstd:chunked codec of lazylayer: zstd frames,
// then the TOC, the tar-split and a footer in skippable frames, as
// containers/storage writes them.
//
//   - Footer and ParseFooter encode and decode the footer frame of either
//     generation: the 72-byte one of containers/storage and the 48-byte
//     one every footer reader accepts, which does not locate the
//     tar-split (LocateTarSplit finds it after the TOC); CheckFooter
//     checks a footer against the blob's size; AppendSkippableFrame and
//     SkippableFramePayload wrap and unwrap the frames around the TOC and
//     tar-split;
//   - Marshal and Unmarshal convert between TOC JSON and the model (an
//     Encoder writes it entry by entry, through a NewFrameWriter);
//     DecompressTOC decompresses a TOC frame's payload; Decode decodes a
//     compressed TOC in memory, and DecodeFrom one still arriving,
//     decoding as it comes;
//   - the tar-split that rebuilds the original tar is written by a
//     TarSplitWriter, read by a TarSplitReader (NewTarSplitReader for
//     verified bytes, NewTarSplitReaderFrom for a stream) and checked
//     against the TOC by CheckTarSplit, record by record: the tar stream
//     it rebuilds must hold exactly the TOC's entries, as archive/tar and
//     GNU tar read it; CheckTarSplitPosition bounds the tar-split a footer
//     claims by what the TOC's entries can need, before it is fetched;
//     sparse files are refused (IsSparseTar): a tar-split records their
//     expanded size, so the tar it rebuilds would extract to other
//     contents than the TOC describes;
//   - Annotations and ParseAnnotations handle the descriptor annotations,
//     in the spellings of every generation of readers.
//
// TOC decoders take toc.DecodeOption limits (documented in package toc,
// with their defaults) and report errors wrapping toc's sentinels, and
// ErrInvalidFrame for a malformed skippable frame. Tar-split readers take
// TarSplitOption limits: the uncompressed stream (DefaultMaxTarSplitSize,
// 1 GiB, and never more than MaxTarSplitSizeFor the TOC), one record
// (DefaultMaxTarSplitRecordSize, 4 MiB) and one entry's tar headers
// (DefaultMaxTarHeaderSize, 1 MiB); their errors wrap ErrInvalidTarSplit,
// ErrTarSplitMismatch and ErrTarSplitTooLarge.
//
// The package does no I/O beyond the io.Reader or io.Writer it is given,
// keeps no global state, and its functions are safe for concurrent use.
package zstdchunked
