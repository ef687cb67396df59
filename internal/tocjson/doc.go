// Package tocjson is the TOC JSON that the eStargz and zstd:chunked codecs
// (toc/estargz, toc/zstdchunked) share, and no user of them needs:
// zstd:chunked's TOC is eStargz's with more fields.
//
//   - Scanner decodes TOC JSON in one pass, several times faster than
//     encoding/json, and declines whatever it is not certain to decode
//     exactly as encoding/json would (the codecs then fall back to it);
//     a Stream feeds it a document as it is inflated or decompressed, so
//     that an index decodes while it downloads;
//   - Entry is an eStargz TOC entry, the form both codecs' entries are
//     validated in: a Decoder turns Entries into the toc model, checking
//     names (against the toc.Limits name bounds), types, chunk tiling and
//     frame order;
//   - DocumentWriter and EncodeAll frame the documents the codecs'
//     encoders write entry by entry.
package tocjson
