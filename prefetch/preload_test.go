package prefetch_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/prefetch"
)

// flakyFetcher fails the Fetch calls whose first range starts at fail.
type flakyFetcher struct {
	recordingFetcher
	fail int64
}

func (f *flakyFetcher) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	if len(ranges) > 0 && ranges[0].Offset == f.fail {
		f.recordingFetcher.mu.Lock()
		f.recordingFetcher.calls = append(f.recordingFetcher.calls, ranges)
		f.recordingFetcher.mu.Unlock()
		return errors.New("flaky")
	}
	return f.recordingFetcher.Fetch(ctx, ranges, fn)
}

func TestPreloadServesRegionAndFallsBack(t *testing.T) {
	blob := randomFile("blob", 3<<20, 7).data
	region := fetcher.Range{Offset: 100, Length: 2 << 20}
	// The second piece (after the first 256 KiB) fails.
	f := &flakyFetcher{recordingFetcher: recordingFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))},
		fail: region.Offset + 256<<10}
	p := prefetch.Preload(context.Background(), f, region)

	ranges := []fetcher.Range{
		{Offset: 200, Length: 1000},          // in the first piece
		{Offset: 256<<10 + 50, Length: 200},  // straddles the first and the failed second
		{Offset: 1 << 20, Length: 600 << 10}, // across later pieces
		{Offset: 2<<20 + 50, Length: 100},    // outside the region
		{Offset: 3<<20 - 10, Length: 10},     // outside the region
	}
	var mu sync.Mutex
	got := make(map[fetcher.Range][]byte)
	err := p.Fetch(context.Background(), ranges, func(r fetcher.Range, data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		got[r] = data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		if !bytes.Equal(got[r], blob[r.Offset:r.End()]) {
			t.Errorf("range %v: wrong bytes", r)
		}
	}
	if n, err := p.Size(context.Background()); n != int64(len(blob)) || err != nil {
		t.Errorf("Size = %d, %v", n, err)
	}
	// Reads inside the region that did not need the failed piece made no
	// request of their own.
	for _, call := range f.calls {
		for _, r := range call {
			if r == ranges[0] || r == ranges[2] {
				t.Errorf("range %v was fetched again: %v", r, f.calls)
			}
		}
	}
}

// stalledFetcher answers no Fetch until its context is done, and counts
// the calls in progress.
type stalledFetcher struct {
	fetcher.Fetcher
	active  atomic.Int64
	started chan struct{}
}

func (s *stalledFetcher) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	s.active.Add(1)
	defer s.active.Add(-1)
	s.started <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

// TestPreloadCloseWaitsForItsRequests checks that once Close returns, no
// request of the preload is still in progress.
func TestPreloadCloseWaitsForItsRequests(t *testing.T) {
	blob := make([]byte, 4<<20)
	for range 20 {
		f := &stalledFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))), started: make(chan struct{}, 16)}
		p := prefetch.Preload(context.Background(), f, fetcher.Range{Offset: 0, Length: 4 << 20})
		<-f.started
		p.Close()
		if n := f.active.Load(); n != 0 {
			t.Fatalf("%d requests in progress after Close", n)
		}
	}
}
