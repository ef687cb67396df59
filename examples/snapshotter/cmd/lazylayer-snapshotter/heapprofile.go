package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"time"

	"github.com/lazylayer/lazylayer/internal/iox"
)

// heapPeakStep is how much the live heap must grow past the last peak
// profiled before profilePeaks writes another profile: profiles of every
// small rise would cost more than they tell.
const heapPeakStep = 4 << 20

// profilePeaks writes a heap profile to path each time the heap's live
// objects reach a new peak (by heapPeakStep), checking every interval,
// until ctx is done. The profile's in-use numbers are those of the last
// garbage collection: the file holds what was live near the process's
// highest memory use, which is what a peak RSS is made of.
func profilePeaks(ctx context.Context, path string, interval time.Duration) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		metrics.Read(sample)
		if live := sample[0].Value.Uint64(); live >= peak+heapPeakStep {
			peak = live
			if err := writeHeapProfile(path); err != nil {
				fmt.Fprintf(os.Stderr, "lazylayer-snapshotter: %v\n", err)
				return
			}
		}
	}
}

// writeHeapProfile replaces the file at path with a heap profile.
func writeHeapProfile(path string) error {
	err := iox.ReplaceFile(path, func(w io.Writer) error { return pprof.Lookup("heap").WriteTo(w, 0) })
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}
