package toc

import (
	"errors"
	"fmt"
)

// ParseFooter detects the format of a blob from its tail and decodes the
// footer. tail must be the last len(tail) bytes of the blob; passing
// MaxFooterSize bytes (or more, e.g. a tail that also holds the index) is
// always enough. A tail shorter than a format's footer cannot match that
// format. If no format matches, the error wraps ErrNoFooter and
// ErrInvalidFooter; a footer that matches a format but is malformed
// yields an error wrapping ErrInvalidFooter only.
func ParseFooter(tail []byte) (Footer, error) {
	for _, parse := range []func([]byte) (Footer, error){ParseEStargzFooter, ParseZstdChunkedFooter} {
		f, err := parse(tail)
		if !errors.Is(err, ErrNoFooter) {
			return f, err
		}
	}
	return Footer{}, fmt.Errorf("toc: last %d bytes: %w: %w", len(tail), ErrNoFooter, ErrInvalidFooter)
}
