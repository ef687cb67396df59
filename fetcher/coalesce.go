package fetcher

import (
	"slices"
)

// CoalescePolicy says how Coalesce may merge ranges. The zero value merges
// only ranges that touch or overlap and puts no cap on request size or on
// spans per request.
type CoalescePolicy struct {
	// MaxGap is the largest number of unwanted bytes between two ranges
	// that may be read to merge them into one span. Touching and
	// overlapping ranges always merge (subject to MaxRequestSize).
	MaxGap int64

	// MaxRequestSize caps the bytes one Request reads, gaps included;
	// zero means no cap. A single caller range longer than the cap is
	// never split: it becomes a Request of its own.
	MaxRequestSize int64

	// MaxSpansPerRequest caps the spans (the byte ranges of one HTTP
	// multi-range request) in one Request; zero means no cap.
	MaxSpansPerRequest int

	// SingleRangeGap replaces MaxGap for a host that serves one range
	// per request (it refuses multi-range requests, or answers them with
	// the whole blob): there each span costs a request and a round trip
	// of its own, so reading a wider gap is cheaper. Values below MaxGap
	// mean MaxGap.
	SingleRangeGap int64
}

// Span is one contiguous byte range to read and the caller ranges it
// covers.
type Span struct {
	Range
	// Covers holds indexes into the ranges given to Coalesce, sorted by
	// the ranges' offsets. Every such range lies within the span.
	Covers []int
}

// Request is one round trip to a source: one or more spans, sorted by
// offset and not overlapping.
type Request struct {
	Spans []Span
}

// Size returns the number of bytes the request reads.
func (q Request) Size() int64 {
	var n int64
	for _, s := range q.Spans {
		n += s.Length
	}
	return n
}

// Coalesce groups ranges into requests under policy p. Ranges may come in
// any order and may overlap or repeat. Each range of non-zero length is
// covered by exactly one span; ranges of zero length cover no bytes and
// appear in no span. Coalesce does not check ranges against a blob's size;
// ranges with a negative offset or length, or whose end overflows, are the
// caller's error and are skipped.
func Coalesce(ranges []Range, p CoalescePolicy) []Request {
	order := make([]int, 0, len(ranges))
	for i, r := range ranges {
		if r.Length > 0 && r.Offset >= 0 && r.End() > r.Offset {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int {
		ra, rb := ranges[a], ranges[b]
		if ra.Offset != rb.Offset {
			if ra.Offset < rb.Offset {
				return -1
			}
			return 1
		}
		return int(min(max(ra.Length-rb.Length, -1), 1))
	})

	fits := func(n int64) bool { return p.MaxRequestSize <= 0 || n <= p.MaxRequestSize }

	// A span covers a run of consecutive ranges in sorted order, so its
	// Covers can share order's backing array.
	var spans []Span
	for k, i := range order {
		r := ranges[i]
		if n := len(spans); n > 0 {
			last := &spans[n-1]
			end := max(last.End(), r.End())
			if r.Offset-last.End() <= max(p.MaxGap, 0) && fits(end-last.Offset) {
				last.Length = end - last.Offset
				last.Covers = order[k-len(last.Covers) : k+1 : k+1]
				continue
			}
		}
		spans = append(spans, Span{Range: r, Covers: order[k : k+1 : k+1]})
	}

	var reqs []Request
	var size int64
	for _, s := range spans {
		if n := len(reqs); n > 0 {
			last := &reqs[n-1]
			if (p.MaxSpansPerRequest <= 0 || len(last.Spans) < p.MaxSpansPerRequest) && fits(size+s.Length) {
				last.Spans = append(last.Spans, s)
				size += s.Length
				continue
			}
		}
		reqs = append(reqs, Request{Spans: []Span{s}})
		size = s.Length
	}
	return reqs
}
