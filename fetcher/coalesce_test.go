package fetcher

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
)

func TestCoalesce(t *testing.T) {
	r := func(off, n int64) Range { return Range{Offset: off, Length: n} }
	type span struct {
		r      Range
		covers []int
	}
	tests := []struct {
		name   string
		ranges []Range
		policy CoalescePolicy
		want   [][]span // requests of spans
	}{
		{"empty", nil, CoalescePolicy{}, nil},
		{"single", []Range{r(5, 10)}, CoalescePolicy{}, [][]span{{{r(5, 10), []int{0}}}}},
		{"zero length skipped", []Range{r(5, 0), r(7, 1)}, CoalescePolicy{}, [][]span{{{r(7, 1), []int{1}}}}},
		{"adjacent merge with zero gap", []Range{r(10, 5), r(0, 10)}, CoalescePolicy{},
			[][]span{{{r(0, 15), []int{1, 0}}}}},
		{"gap too big keeps spans apart in one request", []Range{r(0, 10), r(20, 10)}, CoalescePolicy{MaxGap: 9},
			[][]span{{{r(0, 10), []int{0}}, {r(20, 10), []int{1}}}}},
		{"gap within threshold merges", []Range{r(20, 10), r(0, 10)}, CoalescePolicy{MaxGap: 10},
			[][]span{{{r(0, 30), []int{1, 0}}}}},
		{"overlap and duplicates", []Range{r(0, 10), r(5, 10), r(0, 10), r(2, 3)}, CoalescePolicy{},
			[][]span{{{r(0, 15), []int{0, 2, 3, 1}}}}},
		{"size cap splits spans and requests", []Range{r(0, 10), r(10, 10), r(20, 10)}, CoalescePolicy{MaxRequestSize: 20},
			[][]span{{{r(0, 20), []int{0, 1}}}, {{r(20, 10), []int{2}}}}},
		{"oversize range stands alone", []Range{r(0, 100), r(100, 5)}, CoalescePolicy{MaxRequestSize: 20},
			[][]span{{{r(0, 100), []int{0}}}, {{r(100, 5), []int{1}}}}},
		{"spans per request cap", []Range{r(0, 1), r(10, 1), r(20, 1)}, CoalescePolicy{MaxSpansPerRequest: 2},
			[][]span{{{r(0, 1), []int{0}}, {r(10, 1), []int{1}}}, {{r(20, 1), []int{2}}}}},
		{"invalid ranges skipped", []Range{r(-1, 5), r(3, -2), r(1<<62, 1<<62), r(4, 1)}, CoalescePolicy{},
			[][]span{{{r(4, 1), []int{3}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [][]span
			for _, q := range Coalesce(tt.ranges, tt.policy) {
				var ss []span
				for _, s := range q.Spans {
					ss = append(ss, span{s.Range, s.Covers})
				}
				got = append(got, ss)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Coalesce(%v, %+v)\n got %v\nwant %v", tt.ranges, tt.policy, got, tt.want)
			}
			checkCoalesce(t, tt.ranges, tt.policy, Coalesce(tt.ranges, tt.policy))
		})
	}
}

// checkCoalesce asserts the invariants of Coalesce's result.
func checkCoalesce(t *testing.T, ranges []Range, p CoalescePolicy, reqs []Request) {
	t.Helper()
	seen := make([]int, len(ranges))
	for qi, q := range reqs {
		if len(q.Spans) == 0 {
			t.Fatalf("request %d has no spans", qi)
		}
		if p.MaxSpansPerRequest > 0 && len(q.Spans) > p.MaxSpansPerRequest {
			t.Fatalf("request %d has %d spans, cap %d", qi, len(q.Spans), p.MaxSpansPerRequest)
		}
		if p.MaxRequestSize > 0 && q.Size() > p.MaxRequestSize {
			// Allowed only for a lone span that is exactly one oversize range.
			if len(q.Spans) != 1 || len(q.Spans[0].Covers) != 1 || ranges[q.Spans[0].Covers[0]] != q.Spans[0].Range {
				t.Fatalf("request %d reads %d bytes, cap %d: %+v", qi, q.Size(), p.MaxRequestSize, q)
			}
		}
		for si, s := range q.Spans {
			if s.Length <= 0 {
				t.Fatalf("request %d span %d is empty", qi, si)
			}
			if si > 0 && s.Offset < q.Spans[si-1].End() {
				t.Fatalf("request %d spans %d and %d overlap or are unsorted", qi, si-1, si)
			}
			if !slices.IsSortedFunc(s.Covers, func(a, b int) int { return int(ranges[a].Offset - ranges[b].Offset) }) {
				t.Fatalf("request %d span %d covers unsorted: %v", qi, si, s.Covers)
			}
			for _, i := range s.Covers {
				seen[i]++
				if r := ranges[i]; r.Offset < s.Offset || r.End() > s.End() {
					t.Fatalf("range %d %v not inside span %v", i, r, s.Range)
				}
			}
		}
	}
	for i, r := range ranges {
		valid := r.Length > 0 && r.Offset >= 0 && r.End() > r.Offset
		if valid && seen[i] != 1 || !valid && seen[i] != 0 {
			t.Fatalf("range %d %v covered %d times", i, r, seen[i])
		}
	}
}

func FuzzCoalesce(f *testing.F) {
	f.Add([]byte{0, 0, 0, 10, 0, 20, 0, 10}, int64(0), int64(0), 0)
	f.Add([]byte{0, 5, 0, 10, 0, 0, 0, 10, 0, 5, 0, 1}, int64(3), int64(12), 2)
	f.Fuzz(func(t *testing.T, data []byte, gap, maxSize int64, maxSpans int) {
		var ranges []Range
		for len(data) >= 4 {
			off := int64(binary.BigEndian.Uint16(data))
			n := int64(binary.BigEndian.Uint16(data[2:])) - 100 // some negative lengths
			ranges = append(ranges, Range{Offset: off, Length: n})
			data = data[4:]
		}
		p := CoalescePolicy{MaxGap: gap % 1000, MaxRequestSize: maxSize % 5000, MaxSpansPerRequest: maxSpans % 10}
		checkCoalesce(t, ranges, p, Coalesce(ranges, p))
	})
}
