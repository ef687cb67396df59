package soci

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/lazylayer/lazylayer/internal/untrusted"
)

// PrefetchVersion is the version of the prefetch artifacts soci writes
// and reads, and this package too.
const PrefetchVersion = "1.0"

// A PrefetchSpan is a range of spans of a layer, Start to End included,
// that a prefetch artifact asks to fetch before they are read.
type PrefetchSpan struct {
	Start int32 `json:"start_span"`
	End   int32 `json:"end_span"`
	// Priority orders ranges, lower first; soci reserves it and writes
	// none (0).
	Priority int `json:"priority,omitempty"`
}

// prefetchArtifact is a prefetch artifact as soci encodes it.
type prefetchArtifact struct {
	Version string         `json:"version"`
	Spans   []PrefetchSpan `json:"prefetch_spans"`
}

// EncodePrefetch returns the prefetch artifact of spans, the bytes soci
// writes for the same spans. An artifact needs at least one range, each
// with 0 <= Start <= End (ErrInvalidIndex otherwise).
func EncodePrefetch(spans []PrefetchSpan) ([]byte, error) {
	if err := checkPrefetchSpans(spans, newConfig(nil)); err != nil {
		return nil, fmt.Errorf("soci: encode prefetch artifact: %w", err)
	}
	return json.Marshal(prefetchArtifact{Version: PrefetchVersion, Spans: spans})
}

// DecodePrefetch decodes and validates an untrusted prefetch artifact:
// at most WithMaxPrefetchSize bytes, of version PrefetchVersion, with at
// least one range and at most WithMaxSpans, each with 0 <= Start <= End
// < WithMaxSpans. Whether its spans exist in the layer's zTOC (End <=
// MaxSpanID) is the caller's to check.
func DecodePrefetch(b []byte, opts ...Option) ([]PrefetchSpan, error) {
	c := newConfig(opts)
	if int64(len(b)) > c.maxPrefetchSize {
		return nil, fmt.Errorf("soci: prefetch artifact: %w: %d bytes, more than %d", ErrIndexTooLarge, len(b), c.maxPrefetchSize)
	}
	var a prefetchArtifact
	if err := decodeJSON(b, &a); err != nil {
		return nil, fmt.Errorf("soci: prefetch artifact: %w", err)
	}
	if a.Version != PrefetchVersion {
		return nil, fmt.Errorf("soci: prefetch artifact: %w: version %q", ErrInvalidIndex, untrusted.Short(a.Version))
	}
	if err := checkPrefetchSpans(a.Spans, c); err != nil {
		return nil, fmt.Errorf("soci: prefetch artifact: %w", err)
	}
	return a.Spans, nil
}

func checkPrefetchSpans(spans []PrefetchSpan, c config) error {
	if len(spans) == 0 {
		return fmt.Errorf("%w: no span", ErrInvalidIndex)
	}
	if len(spans) > c.maxSpans {
		return fmt.Errorf("%w: %d ranges of spans, more than %d", ErrIndexTooLarge, len(spans), c.maxSpans)
	}
	for i, s := range spans {
		if s.Start < 0 || s.End < s.Start {
			return fmt.Errorf("%w: range %d: spans %d to %d", ErrInvalidIndex, i, s.Start, s.End)
		}
		if int64(s.End) >= int64(c.maxSpans) {
			return fmt.Errorf("%w: range %d: span %d, more than %d spans", ErrIndexTooLarge, i, s.End, c.maxSpans)
		}
	}
	return nil
}

// A ByteRange is a range of a layer's uncompressed tar stream.
type ByteRange struct{ Offset, Length int64 }

// SpanStarts returns where each span of z starts in the uncompressed
// tar stream, decoding its checkpoints (with opts' limits) for a gzip
// layer.
func (z *Ztoc) SpanStarts(opts ...Option) ([]int64, error) {
	c := newConfig(opts)
	if z.Compression == Uncompressed {
		info, err := DecodeTarZinfo(z.Checkpoints, opts...)
		if err != nil {
			return nil, err
		}
		n := info.Spans()
		if n > int64(c.maxSpans) {
			return nil, fmt.Errorf("soci: %w: %d spans, more than %d", ErrTooLarge, n, c.maxSpans)
		}
		starts := make([]int64, n)
		for i := range starts {
			starts[i] = int64(i) * info.SpanSize
		}
		return starts, nil
	}
	cp, err := DecodeCheckpoints(z.Checkpoints, opts...)
	if err != nil {
		return nil, err
	}
	starts := make([]int64, len(cp.Points))
	for i, p := range cp.Points {
		starts[i] = p.Out
	}
	return starts, nil
}

// PrefetchSpans returns the ranges of spans, of a layer whose spans start
// at starts (Ztoc.SpanStarts), that hold the uncompressed bytes of
// ranges, as soci's index builder computes them: a range [o, o+n) takes
// the spans from the one holding o to the one holding o+n (the last
// span starting at or before it), and the result is sorted, with ranges
// that overlap or touch merged. It returns nil for no ranges.
func PrefetchSpans(starts []int64, ranges []ByteRange) []PrefetchSpan {
	if len(starts) == 0 {
		return nil
	}
	spanOf := func(off int64) int32 {
		i, found := slices.BinarySearch(starts, off)
		if !found {
			i--
		}
		return int32(max(i, 0))
	}
	var out []PrefetchSpan
	for _, r := range ranges {
		out = append(out, PrefetchSpan{Start: spanOf(r.Offset), End: spanOf(r.Offset + r.Length)})
	}
	slices.SortFunc(out, func(a, b PrefetchSpan) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End))
	})
	merged := out[:0]
	for _, s := range out {
		if n := len(merged); n > 0 && s.Start <= merged[n-1].End+1 {
			merged[n-1].End = max(merged[n-1].End, s.End)
			continue
		}
		merged = append(merged, s)
	}
	if len(merged) == 0 {
		return nil
	}
	return merged
}
