package toc

import "errors"

// Sentinel errors returned (wrapped, with context) by the decoders of this
// package. Callers test for them with errors.Is.
var (
	// ErrInvalidFooter means a blob's tail holds no footer of any known
	// format, or a malformed one.
	ErrInvalidFooter = errors.New("invalid footer")

	// ErrNoFooter means a blob's tail ends in no footer of any known
	// format at all: the blob is not seekable, or has lost its end. Errors
	// wrapping it wrap ErrInvalidFooter too.
	ErrNoFooter = errors.New("no known footer")

	// ErrInvalidTOC means an index is malformed or inconsistent: bad JSON,
	// an unknown entry type, an unsafe name, chunks that do not tile a
	// file, offsets outside the blob, and the like.
	ErrInvalidTOC = errors.New("invalid TOC")

	// ErrTOCTooLarge means an index exceeds a decoding limit (see
	// WithMaxTOCSize and WithMaxEntries).
	ErrTOCTooLarge = errors.New("TOC too large")

	// ErrUnsupportedVersion means an index declares a version this package
	// does not implement.
	ErrUnsupportedVersion = errors.New("unsupported TOC version")

	// ErrMissingAnnotation means a layer descriptor lacks an annotation a
	// format requires, typically because the layer is not in that format.
	ErrMissingAnnotation = errors.New("missing annotation")

	// ErrInvalidAnnotation means an annotation is present but malformed.
	ErrInvalidAnnotation = errors.New("invalid annotation")
)
