package soci

import (
	"errors"
	"fmt"

	"github.com/lazylayer/lazylayer/toc"
)

// Sentinel errors returned (wrapped, with context) by this package.
// Callers test for them with errors.Is. Each wraps the toc sentinel of
// the same meaning, so code that handles every format's index alike
// can test for those instead.
var (
	// ErrInvalid means a zTOC or checkpoint blob is malformed or
	// inconsistent: a field outside the buffer, checkpoints whose
	// offsets do not increase, a bit count over 7, max_span_id that
	// disagrees with the span digests, files that overlap, and the like.
	ErrInvalid = fmt.Errorf("invalid zTOC: %w", toc.ErrInvalidTOC)

	// ErrTooLarge means a zTOC, or the layer it claims to index, exceeds
	// a decoding or indexing limit (see the With* options).
	ErrTooLarge = fmt.Errorf("zTOC too large: %w", toc.ErrTOCTooLarge)

	// ErrInvalidLayer means the indexer cannot index a layer: corrupt
	// gzip, a malformed tar, or a tar entry type soci does not index.
	ErrInvalidLayer = errors.New("cannot index layer")

	// ErrInvalidIndex means a SOCI index or a prefetch artifact is
	// malformed, of a media type or version this package does not read,
	// lacks an annotation it needs, lists a layer twice, or names a
	// layer its image does not have (IndexManifest.Match).
	ErrInvalidIndex = errors.New("invalid SOCI index")

	// ErrIndexTooLarge means a SOCI index, a blob it lists, or a
	// prefetch artifact exceeds a limit (WithMaxIndexSize,
	// WithMaxIndexBlobs, WithMaxZtocSize, WithMaxPrefetchSize,
	// WithMaxSpans).
	ErrIndexTooLarge = errors.New("SOCI index too large")
)
