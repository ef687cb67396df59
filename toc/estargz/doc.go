// Package estargz is the eStargz codec of lazylayer: gzip members, the
// TOC JSON in a gzip member at the blob's end, holding the tar entry
// stargz.index.json (TOCTarName), then a footer. It reads and writes the
// toc model byte for byte as the reference implementation
// (containerd/stargz-snapshotter/estargz) does.
//
//   - Footer and ParseFooter encode and decode the 51-byte footer (and
//     ParseFooter accepts the legacy 47-byte and the external-TOC 46-byte
//     footers); a tail that ends in none is an error wrapping
//     toc.ErrNoFooter;
//   - WriteTOCMember and ReadTOCMember wrap and unwrap the TOC JSON in its
//     gzip member (TOCTar gives the member's uncompressed bytes);
//   - Marshal and Unmarshal convert between TOC JSON and the model;
//     Decode does both steps for a member in memory, and DecodeFrom for a
//     member still arriving, decoding as it comes; an Encoder and
//     WriteTOCMemberFrom write the JSON and its member entry by entry, for
//     a writer that does not hold them;
//   - Annotations and ParseAnnotations handle the layer descriptor
//     annotations that pin the TOC digest (AnnotationTOCDigest) and give
//     the uncompressed size.
//
// Decoders take toc.DecodeOption limits (documented in package toc, with
// their defaults) and report errors wrapping toc's sentinels. The package
// does no I/O beyond the io.Reader or io.Writer it is given, keeps no
// global state, and its functions are safe for concurrent use.
package estargz
