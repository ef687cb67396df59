// Package soci reads, writes and makes zTOCs: soci-snapshotter's index of
// an unmodified gzip or uncompressed tar layer, which lets a reader fetch
// and decompress only the spans of the layer that hold the files it
// wants.
//
// A zTOC (a FlatBuffer, schema ztoc.fbs in soci-snapshotter) holds the
// layer's file table, the sha256 of each span's compressed bytes, and for
// a gzip layer a checkpoint per span: the bit position between two
// deflate blocks and the 32 KiB window of output before it. Encode writes
// the bytes soci's marshaler writes for the same values; Index makes the
// zTOC soci's builder makes of the same layer, in one pass and without a
// temporary file.
//
// # SOCI index
//
// A SOCI index binds zTOCs to an image: an OCI image manifest whose
// config ("{}") has the media type MediaTypeIndexV2 (or MediaTypeIndexV1)
// and whose layers are the zTOCs of the image's layers, each annotated
// with the layer's digest, media type and the span size, then prefetch
// artifacts (MediaTypePrefetch: ranges of spans to fetch first, see
// EncodePrefetch). IndexManifest.Encode writes a v2 index as soci's
// "soci convert" does; DecodeIndexManifest reads both versions. A v2 index
// is bound to its image by AnnotationIndexDigest on the image manifest, and
// listed next to it in an image index (IndexDescriptor); a v1 index names
// the manifest as its subject and is found through the referrers API.
//
// # Bounds
//
// Decode, DecodeCheckpoints, DecodeTarZinfo, Index, DecodeIndexManifest
// and DecodePrefetch take untrusted input. Each bound below is checked
// before the memory it bounds is allocated, and set by an option; a
// value <= 0 selects the default.
//
//   - the size of an encoded zTOC: DefaultMaxZtocSize (256 MiB),
//     WithMaxZtocSize;
//   - files in a zTOC, or met by Index: DefaultMaxFiles (2^21),
//     WithMaxFiles;
//   - PAX records of all files: DefaultMaxPAXRecords (2^21),
//     WithMaxPAXRecords;
//   - total length of the decoded strings (names, link names, user and
//     group names, PAX records): DefaultMaxStringBytes (128 MiB),
//     WithMaxStringBytes;
//   - spans, checkpoints and span digests: DefaultMaxSpans (65536),
//     WithMaxSpans;
//   - a layer's compressed and uncompressed size, as claimed by a zTOC or
//     met by Index, and so every offset: DefaultMaxLayerSize (256 GiB),
//     WithMaxLayerSize;
//   - the size of a SOCI index: DefaultMaxIndexSize (4 MiB),
//     WithMaxIndexSize, which bounds what decoding its JSON allocates;
//   - zTOCs and prefetch artifacts of a SOCI index: DefaultMaxIndexBlobs
//     (2048), WithMaxIndexBlobs; each zTOC's size is bounded by
//     WithMaxZtocSize and each prefetch artifact's by
//     DefaultMaxPrefetchSize (1 MiB), WithMaxPrefetchSize, as the index
//     states them, before either is fetched;
//   - ranges of a prefetch artifact, and the spans they name: WithMaxSpans.
//
// Decoding checks, besides: that max_span_id is the number of span
// digests less one and of checkpoints less one, checkpoint bit counts are
// at most 7, checkpoint offsets increase, the first checkpoint is at
// uncompressed offset 0 and the last within the layer, the checkpoint
// blob's size matches one of its two versions, span digests are sha256,
// files follow each other in tar order within the tar stream, and times
// are RFC 3339. Index keeps 32 KiB per checkpoint in memory and reads the
// layer once.
//
// Decoding does not check a checkpoint's window: only decompressing the
// span before it can, which is the reader's part.
package soci
