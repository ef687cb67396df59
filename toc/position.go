package toc

import (
	"fmt"
	"math"

	"github.com/lazylayer/lazylayer/internal/untrusted"
)

// AnnotationIndexPosition is lazylayer's own layer descriptor annotation,
// written next to the format's: "offset:length", two unsigned decimal
// numbers, the blob range [offset, offset+length) that a reader fetches to
// open the layer in one request. The range ends at the blob's end: it
// holds the index and the footer (eStargz: the TOC member and the footer;
// zstd:chunked: the TOC and tar-split frames and the footer frame). A TOC
// larger than a reader's default tail then costs no second round trip.
//
// It says where to fetch, nothing more: a reader finds the index from the
// footer it fetched, and verifies it against the pinned digest, exactly as
// without the annotation, so a wrong position costs bytes or a request
// but never yields a wrong layer.
const AnnotationIndexPosition = "io.github.lazylayer.index-position"

// IndexPositionAnnotations returns the AnnotationIndexPosition annotation
// of a blob of blobSize bytes whose index starts at indexOffset.
func IndexPositionAnnotations(indexOffset, blobSize int64) map[string]string {
	return map[string]string{
		AnnotationIndexPosition: fmt.Sprintf("%d:%d", indexOffset, blobSize-indexOffset),
	}
}

// ParseIndexPositionAnnotations reads the AnnotationIndexPosition
// annotation of a layer descriptor. Without it the error wraps
// ErrMissingAnnotation. The value is parsed strictly: two unsigned decimal
// fields, a length above zero, an end that fits in an int64; anything else
// yields an error wrapping ErrInvalidAnnotation. Whether the range ends at
// the blob's end, and is small enough to fetch, is the caller's to check.
func ParseIndexPositionAnnotations(a map[string]string) (offset, length int64, err error) {
	s, ok := a[AnnotationIndexPosition]
	if !ok {
		return 0, 0, fmt.Errorf("toc: annotation %q: %w", AnnotationIndexPosition, ErrMissingAnnotation)
	}
	v, err := untrusted.Decimals(s, 2)
	if err != nil {
		return 0, 0, fmt.Errorf("toc: annotation %q: %w: %w", AnnotationIndexPosition, err, ErrInvalidAnnotation)
	}
	if offset, length = v[0], v[1]; length == 0 || offset > math.MaxInt64-length {
		return 0, 0, fmt.Errorf("toc: annotation %q: %d bytes at %d: impossible range: %w", AnnotationIndexPosition, length, offset, ErrInvalidAnnotation)
	}
	return offset, length, nil
}
