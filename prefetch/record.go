package prefetch

import (
	"cmp"
	"slices"
	"sync"

	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
)

// A Recorder collects the first reads of a lazy layer's chunks, reported
// through reader.WithAccessObserver(rec.Observe), and turns them into a
// profile of the workload: a Plan, or a trace for WriteTrace, of the byte
// ranges of the chunks read. The profile
// closes the prefetch loop: run a workload lazily once, record it, rebuild
// the layer with writer.WithPrioritizedFiles(plan.Paths(0)), and later
// starts fetch what the workload needs first, in one range.
//
// The zero Recorder is ready to use and safe for concurrent use.
type Recorder struct {
	mu       sync.Mutex
	accesses []reader.Access
}

// Observe records a. Reads that failed are recorded but left out of the
// profile.
func (r *Recorder) Observe(a reader.Access) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.accesses = append(r.accesses, a)
}

// MaxRecordedRanges bounds the byte ranges a Recorder keeps for one
// file: a file read in more places than this is profiled whole.
const MaxRecordedRanges = 64

// files returns the files read, in the order their first chunk was asked
// for, each as the byte ranges of the chunks read (adjacent chunks
// merged), or as one whole-file access if every chunk was read or the
// ranges exceed MaxRecordedRanges.
func (r *Recorder) files() []Access {
	r.mu.Lock()
	accesses := slices.Clone(r.accesses)
	r.mu.Unlock()
	slices.SortFunc(accesses, func(a, b reader.Access) int { return cmp.Compare(a.Seq, b.Seq) })
	var order []*toc.Entry
	chunks := make(map[*toc.Entry][]toc.Chunk)
	for _, a := range accesses {
		if a.Err != nil || a.Entry == nil || a.Chunk < 0 || a.Chunk >= len(a.Entry.Chunks) {
			continue
		}
		if _, ok := chunks[a.Entry]; !ok {
			order = append(order, a.Entry)
		}
		chunks[a.Entry] = append(chunks[a.Entry], a.Entry.Chunks[a.Chunk])
	}
	var out []Access
	seen := make(map[string]bool)
	for _, e := range order {
		if seen[e.Name] { // a Recorder shared by layers: the first layer's reads win
			continue
		}
		seen[e.Name] = true
		read := chunks[e]
		slices.SortFunc(read, func(a, b toc.Chunk) int { return cmp.Compare(a.Offset, b.Offset) })
		var ranges []Access
		for _, c := range read {
			if n := len(ranges); n > 0 && ranges[n-1].Offset+ranges[n-1].Length >= c.Offset {
				ranges[n-1].Length = max(ranges[n-1].Length, c.Offset+c.Size-ranges[n-1].Offset)
				continue
			}
			ranges = append(ranges, Access{Path: e.Name, Op: OpRead, Offset: c.Offset, Length: c.Size})
		}
		whole := len(ranges) > MaxRecordedRanges || len(ranges) == 1 &&
			ranges[0].Offset == 0 && ranges[0].Length >= e.Size || len(ranges) == 0
		for _, rg := range ranges {
			if rg.Length <= 0 {
				whole = true
			}
		}
		if whole {
			out = append(out, Access{Path: e.Name, Op: OpRead})
			continue
		}
		out = append(out, ranges...)
	}
	return out
}

// Trace returns the recorded profile as a trace for WriteTrace: the byte
// ranges read of each file, files in first-read order.
func (r *Recorder) Trace() []Access { return r.files() }

// Plan returns the recorded profile as a plan for the given layer index:
// the files read, in first-read order, each whole or as the byte ranges
// of the chunks read. Plan.Paths of it is what a writer can prioritise.
func (r *Recorder) Plan(layer int) *Plan {
	var p Plan
	for i, a := range r.files() {
		p.Add(Item{Layer: layer, Path: a.Path, Offset: a.Offset, Length: a.Length, Priority: i, Reason: ReasonTrace})
	}
	return &p
}
