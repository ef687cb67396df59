package prefetch

import (
	"cmp"
	"slices"
	"sync"

	"github.com/lazylayer/lazylayer/reader"
)

// A Recorder collects the first reads of a lazy layer's chunks, reported
// through reader.WithAccessObserver(rec.Observe), and turns them into a
// profile of the workload: a Plan, or a trace for WriteTrace. The profile
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

// files returns the names of the files read, each once, in the order
// their first chunk was asked for, with the byte range each read touched.
func (r *Recorder) files() []Access {
	r.mu.Lock()
	accesses := slices.Clone(r.accesses)
	r.mu.Unlock()
	slices.SortFunc(accesses, func(a, b reader.Access) int { return cmp.Compare(a.Seq, b.Seq) })
	var out []Access
	seen := make(map[string]bool)
	for _, a := range accesses {
		if a.Err != nil || a.Entry == nil || seen[a.Entry.Name] {
			continue
		}
		seen[a.Entry.Name] = true
		out = append(out, Access{Path: a.Entry.Name, Op: OpRead})
	}
	return out
}

// Trace returns the recorded profile as a trace of whole-file reads, in
// first-read order, for WriteTrace.
func (r *Recorder) Trace() []Access { return r.files() }

// Plan returns the recorded profile as a plan for the given layer index:
// the files read, in first-read order.
func (r *Recorder) Plan(layer int) *Plan {
	var p Plan
	for i, a := range r.files() {
		p.Add(Item{Layer: layer, Path: a.Path, Priority: i, Reason: ReasonTrace})
	}
	return &p
}
