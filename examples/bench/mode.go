package main

import (
	"context"
	"fmt"
	"time"

	"github.com/lazylayer/lazylayer/internal/simregistry"
)

// A Mode is one way of getting from nothing to having read the trace's
// files. Run does its own setup (building a blob, pushing it), then starts
// env's clock, pulls and reads every trace file through readTrace, and
// returns the clock's Result.
type Mode struct {
	Name string
	Run  func(ctx context.Context, env *Env) (Result, error)
	// MultiRange says the mode asks for many ranges at once, so that
	// its time depends on how the registry answers a request for several
	// (-ranges): it is measured under each behaviour.
	MultiRange bool
}

// allModes lists what a run measures, in report order: the gzip layer
// with its zTOC once for each of spanSizes.
func allModes(spanSizes []int64) []Mode {
	lazy := new(lazyModes)
	modes := []Mode{
		{"full pull", fullPull, false},
		{"lazy, no prefetch", onDemand(lazy.plainBlob), false},
		{"lazy + trace prefetch", traced(lazy.plainBlob), true},
		{"lazy zstd:chunked + trace prefetch", traced(lazy.zstdBlob), true},
	}
	for _, n := range spanSizes {
		gz := fmt.Sprintf("lazy gzip+zTOC (%s spans)", formatSpanSize(n))
		modes = append(modes,
			Mode{gz + ", no prefetch", onDemand(lazy.ztocBlob(n)), false},
			Mode{gz + " + trace prefetch", traced(lazy.ztocBlob(n)), true})
	}
	return append(modes,
		Mode{"lazy + image-config prefetch", lazy.lazyImageConfig, false},
		// Its measured run fetches one region; its recording run takes
		// as long as "lazy, no prefetch".
		Mode{"lazy + recorded profile", lazy.lazyRecorded, false})
}

// Stage is the busy time of one step of a mode. Stages of a pipelined
// mode overlap, so they may add up to more than the total.
type Stage struct {
	Name string // "open", "toc", "prefetch", "fetch", "decompress", "untar", "read"
	Time time.Duration
}

// Result is what one mode measured.
type Result struct {
	Mode string
	// MultiRange is how the registry answered requests for several
	// ranges.
	MultiRange simregistry.MultiRange
	Total      time.Duration // from the first request to the last trace file read and verified
	Requests   int           // requests through the link in that time
	Bytes      int64         // response body bytes through the link
	// Waves counts the requests sent while no other was in flight: the
	// round trips on the critical path, whose latency nothing overlapped.
	Waves int
	// NeededBytes is the compressed bytes the trace needs, for the
	// physical limit; zero means the environment's estimate.
	NeededBytes int64
	// ChunkNeededBytes, if not zero, is what the trace needs of the
	// same tree as eStargz, for a mode that fetches coarser units (a
	// gzip layer's spans): the table then also compares the time with
	// that limit.
	ChunkNeededBytes int64
	Stages           []Stage
	// Note, if set, is printed under the results table.
	Note string
}

// Clock measures one mode: the time since it started and the registry
// traffic since then.
type Clock struct {
	env   *Env
	start time.Time
}

// StartClock resets the registry's counters and starts timing.
func (e *Env) StartClock() *Clock {
	e.Registry.ResetStats()
	return &Clock{env: e, start: time.Now()}
}

// Elapsed returns the time since the clock started.
func (c *Clock) Elapsed() time.Duration { return time.Since(c.start) }

// Result stops the clock and returns the total time and traffic with
// stages.
func (c *Clock) Result(stages ...Stage) Result {
	total := c.Elapsed()
	st := c.env.Registry.Stats()
	return Result{Total: total, Requests: st.Requests, Bytes: st.Bytes, Waves: st.Waves(), Stages: stages}
}
