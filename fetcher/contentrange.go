package fetcher

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/lazylayer/lazylayer/internal/untrusted"
)

// parseContentRange parses a Content-Range value of the form
// "bytes first-last/total" where total may be "*" (reported as -1).
func parseContentRange(s string) (r Range, total int64, err error) {
	bad := func() (Range, int64, error) {
		return Range{}, 0, fmt.Errorf("fetcher: Content-Range %q: %w", untrusted.Short(s), ErrBadContentRange)
	}
	spec, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return bad()
	}
	span, totalStr, ok := strings.Cut(spec, "/")
	if !ok {
		return bad()
	}
	firstStr, lastStr, ok := strings.Cut(span, "-")
	if !ok {
		return bad()
	}
	first, err1 := parseUint(firstStr)
	last, err2 := parseUint(lastStr)
	if err1 != nil || err2 != nil || last < first || last == 1<<63-1 {
		return bad()
	}
	total = -1
	if totalStr != "*" {
		if total, err = parseUint(totalStr); err != nil || total <= last {
			return bad()
		}
	}
	return Range{Offset: first, Length: last - first + 1}, total, nil
}

// parseUint parses a decimal of digits only: no sign, no spaces.
func parseUint(s string) (int64, error) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, 10, 64)
}

// rangeHeader formats spans as an HTTP Range header value.
func rangeHeader(spans []Range) string {
	var b strings.Builder
	b.WriteString("bytes=")
	for i, s := range spans {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.String())
	}
	return b.String()
}
