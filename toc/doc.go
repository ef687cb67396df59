// Package toc is the neutral model of lazylayer's format layer: the
// in-memory index of a seekable layer (a TOC of entries and chunks), the
// Format that says how a blob is laid out, the sentinel errors and
// decoding limits every codec shares, and lazylayer's own index-position
// annotation. The codecs live in sub-packages, one per format, in the
// manner of image and image/png: toc/estargz, toc/zstdchunked and
// toc/soci. This package imports none of them.
//
// A lazy reader starts from a blob's tail: each codec's ParseFooter
// recognises its format in the last MaxFooterSize bytes and returns a
// Footer that says where the index lives; the codec's decoder then turns
// the index into a TOC whose chunks locate every piece of file data in
// the blob (FrameOffset, FrameEnd, InnerOffset) and carry the digest that
// verifies it. Which formats a reader tries, and in which order, is the
// reader's choice (see package reader). A writer builds a TOC while
// compressing and encodes it with the format's encoder.
//
// IndexPositionAnnotations and ParseIndexPositionAnnotations handle
// lazylayer's own descriptor annotation, AnnotationIndexPosition
// ("offset:length"): the range at the blob's end that holds index and
// footer, which a reader fetches first, in one request, whatever the
// index's size. It only says where to fetch; nothing is trusted because
// of it.
//
// Codecs parse untrusted bytes: their decoders validate structure (names,
// chunk tiling, offsets), never panic, and report problems with errors
// wrapping the sentinels ErrNoFooter, ErrInvalidFooter, ErrInvalidTOC,
// ErrTOCTooLarge, ErrUnsupportedVersion, ErrMissingAnnotation and
// ErrInvalidAnnotation. DecodeOption limits, which every codec takes
// (NewLimits resolves them), bound what an index may cost its decoder and
// its readers, and are checked as the index is decoded, before anything
// is allocated for what exceeds them:
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
// other limits are sizes that real layers stay far below. Error messages
// quote input cut short (internal/untrusted).
//
// A decoded TOC is only as trustworthy as its Digest: callers compare it to
// the digest pinned by the layer's annotations before using it.
//
// The package does no I/O, keeps no global state, and its functions are
// safe for concurrent use.
package toc
