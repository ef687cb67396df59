package reader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// manyFiles is a layer of n files of a few chunks each, and their contents.
func manyFiles(t *testing.T, n int, share bool, opts ...Option) (*Layer, *countingFetcher, *toc.TOC, map[string][]byte) {
	t.Helper()
	b := &blobBuilder{chunkSize: 1000, share: share}
	contents := make(map[string][]byte)
	for i := range n {
		name := fmt.Sprintf("d/f%03d", i)
		contents[name] = pseudoRandom(500+i*737%3000, byte(i))
		b.add(&toc.Entry{Name: name, Mode: 0o644}, contents[name])
	}
	blob, index := b.finish()
	l, f := testLayer(t, blob, index, opts...)
	return l, f, index, contents
}

// entryNames lists the names of index's entries, in index order.
func entryNames(index *toc.TOC) []string {
	names := make([]string, len(index.Entries))
	for i, e := range index.Entries {
		names[i] = e.Name
	}
	return names
}

func wholeFiles(names ...string) []FileRange {
	out := make([]FileRange, len(names))
	for i, n := range names {
		out[i] = FileRange{Name: n}
	}
	return out
}

func TestPrefetchFillsCacheSoReadsFetchNothing(t *testing.T) {
	for _, share := range []bool{false, true} {
		l, f, _, contents := manyFiles(t, 40, share, WithCache(newMapCache()))
		names := slices.Collect(maps.Keys(contents))
		if err := l.Prefetch(context.Background(), wholeFiles(names...)); err != nil {
			t.Fatal(err)
		}
		if f.calls.Load() == 0 {
			t.Fatal("prefetch fetched nothing")
		}
		f.reset()
		for name, want := range contents {
			got, err := l.ReadFile(name)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("share=%v: %s: %d bytes, %v", share, name, len(got), err)
			}
		}
		if n := f.calls.Load(); n != 0 {
			t.Errorf("share=%v: reads after the prefetch made %d fetches", share, n)
		}
		// A second prefetch of the same files has nothing to do.
		if err := l.Prefetch(context.Background(), wholeFiles(names...)); err != nil || f.calls.Load() != 0 {
			t.Errorf("share=%v: repeated prefetch: %d fetches, %v", share, f.calls.Load(), err)
		}
	}
}

func TestPrefetchCoalescesIntoFewRequests(t *testing.T) {
	l, f, _, contents := manyFiles(t, 200, false, WithCache(newMapCache()))
	names := slices.Collect(maps.Keys(contents))
	if err := l.Prefetch(context.Background(), wholeFiles(names...)); err != nil {
		t.Fatal(err)
	}
	// 200 files of about 3 frames each, contiguous in the blob: one span,
	// cut into the growing batches.
	if n := f.calls.Load(); n > 4 {
		t.Errorf("prefetch of %d frames made %d fetches", len(f.asked), n)
	}
}

func TestPrefetchByteRange(t *testing.T) {
	l, f, index, _ := manyFiles(t, 3, false, WithCache(newMapCache()))
	e := index.Entries[2] // 2 chunks
	if err := l.Prefetch(context.Background(), []FileRange{{Name: e.Name, Offset: 1000, Length: 10}}); err != nil {
		t.Fatal(err)
	}
	if len(f.asked) != 1 || f.asked[0].Offset != e.Chunks[1].FrameOffset {
		t.Errorf("prefetch of bytes in chunk 1 asked for %v, want its frame at %d", f.asked, e.Chunks[1].FrameOffset)
	}
}

func TestPrefetchErrors(t *testing.T) {
	l, _, _ := sampleLayer(t, false)
	if err := l.Prefetch(context.Background(), wholeFiles("etc/hostname")); !errors.Is(err, ErrNoCache) {
		t.Errorf("without cache: %v, want ErrNoCache", err)
	}
	l, _, _ = sampleLayer(t, false, WithCache(newMapCache()))
	for _, name := range []string{"missing", "etc", "../x", "dev/null"} {
		err := l.Prefetch(context.Background(), wholeFiles(name))
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != name {
			t.Errorf("%q: %v, want a PathError", name, err)
		}
	}
	// Links are followed.
	if err := l.Prefetch(context.Background(), wholeFiles("data/hard2", "usr/bin/abs")); err != nil {
		t.Error(err)
	}
	l.Close()
	if err := l.Prefetch(context.Background(), wholeFiles("data/small")); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("closed layer: %v", err)
	}
}

func TestPrefetchCorruptChunkFails(t *testing.T) {
	b := &blobBuilder{}
	b.add(&toc.Entry{Name: "a"}, pseudoRandom(3000, 1))
	blob, index := b.finish()
	index.Entries[0].Digest = digest.FromString("not the content")
	index.Entries[0].Chunks[0].Digest = index.Entries[0].Digest
	c := newMapCache()
	l, _ := testLayer(t, blob, index, WithCache(c))
	err := l.Prefetch(context.Background(), wholeFiles("a"))
	if !errors.Is(err, ErrChunkDigest) {
		t.Errorf("prefetch of a corrupt chunk: %v, want ErrChunkDigest", err)
	}
	if len(c.m) != 0 {
		t.Error("corrupt chunk was cached")
	}
}

func TestPrefetchSharesFetchWithConcurrentRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMapCache()
		l, f, index, contents := manyFiles(t, 20, false, WithCache(c))
		f.gate = make(chan struct{})
		names := entryNames(index)
		p, err := l.StartPrefetch(context.Background(), wholeFiles(names...))
		if err != nil {
			t.Fatal(err)
		}
		// The prefetch has claimed its frames: a read now waits for them.
		name := names[len(names)-1]
		var got []byte
		var readErr error
		var wg sync.WaitGroup
		wg.Go(func() { got, readErr = l.ReadFile(name) })
		frame := index.Entries[len(index.Entries)-1].Chunks[0].FrameOffset
		waitFor(t, func() bool {
			l.flights.mu.Lock()
			defer l.flights.mu.Unlock()
			fl := l.flights.m[frame]
			return fl != nil && fl.waiters == 2
		})
		close(f.gate)
		wg.Wait()
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		if readErr != nil || !bytes.Equal(got, contents[name]) {
			t.Fatalf("read during prefetch: %d bytes, %v", len(got), readErr)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		seen := make(map[int64]bool)
		for _, r := range f.asked {
			for _, e := range index.Entries {
				for _, c := range e.Chunks {
					if c.FrameOffset >= r.Offset && c.FrameEnd <= r.End() {
						if seen[c.FrameOffset] {
							t.Fatalf("frame at %d fetched twice", c.FrameOffset)
						}
						seen[c.FrameOffset] = true
					}
				}
			}
		}
	})
}

func TestPrefetchCancelLeavesWaitingReadsWorking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMapCache()
		l, f, index, contents := manyFiles(t, 20, false, WithCache(c))
		f.gate = make(chan struct{})
		names := entryNames(index)
		ctx, cancel := context.WithCancel(context.Background())
		p, err := l.StartPrefetch(ctx, wholeFiles(names...))
		if err != nil {
			t.Fatal(err)
		}
		name := names[0]
		var got []byte
		var readErr error
		var wg sync.WaitGroup
		wg.Go(func() { got, readErr = l.ReadFile(name) })
		frame := index.Entries[0].Chunks[0].FrameOffset
		waitFor(t, func() bool {
			l.flights.mu.Lock()
			defer l.flights.mu.Unlock()
			fl := l.flights.m[frame]
			return fl != nil && fl.waiters == 2
		})
		cancel()
		if err := p.Wait(); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled prefetch: %v", err)
		}
		close(f.gate) // the read's own fetch may proceed
		wg.Wait()
		if readErr != nil || !bytes.Equal(got, contents[name]) {
			t.Fatalf("read that waited on a cancelled prefetch: %d bytes, %v", len(got), readErr)
		}
		l.flights.mu.Lock()
		defer l.flights.mu.Unlock()
		if len(l.flights.m) != 0 {
			t.Errorf("%d loads left in flight after cancel", len(l.flights.m))
		}
	})
}

func TestPrefetchProgress(t *testing.T) {
	l, _, _, contents := manyFiles(t, 30, false, WithCache(newMapCache()))
	names := slices.Collect(maps.Keys(contents))
	var calls []PrefetchProgress
	err := l.Prefetch(context.Background(), wholeFiles(names...), WithPrefetchProgress(func(p PrefetchProgress) {
		calls = append(calls, p)
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) < 2 {
		t.Fatalf("%d progress calls", len(calls))
	}
	first, last := calls[0], calls[len(calls)-1]
	if first.FramesDone != 0 || first.BytesDone != 0 || first.Frames == 0 {
		t.Errorf("first progress %+v, want totals and nothing done", first)
	}
	if last.FramesDone != last.Frames || last.BytesDone != last.Bytes || last != (PrefetchProgress{first.Frames, first.Frames, first.Bytes, first.Bytes, last.Busy}) {
		t.Errorf("last progress %+v, want everything of %+v done", last, first)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i].FramesDone != calls[i-1].FramesDone+1 {
			t.Fatalf("progress went from %+v to %+v", calls[i-1], calls[i])
		}
	}
}

func TestPlanBatchesFollowPriority(t *testing.T) {
	// Frames listed urgent first, laid out in the blob in reverse.
	var frames []prefetchFrame
	for i := range 6 {
		frames = append(frames, prefetchFrame{frame: fetcher.Range{Offset: int64(5-i) << 30, Length: firstBatch}})
	}
	batches := planBatches(frames, []int{0, 1, 2, 3, 4, 5}, DefaultPrefetchBuffer)
	prev := -1
	for k, b := range batches {
		in := []int(b)
		if slices.Min(in) != prev+1 || slices.Max(in) != prev+len(in) {
			t.Fatalf("batch %d holds frames %v after frame %d, want the next urgent ones", k, in, prev)
		}
		prev += len(in)
	}
	if len(batches[0]) != 1 {
		t.Errorf("first batch holds %d frames, want one small answer first", len(batches[0]))
	}
}

// spanFetcher records, for every Fetch, the spans a fetcher coalescing
// with DefaultCoalescePolicy reads, gaps included.
type spanFetcher struct {
	fetcher.Fetcher
	mu    sync.Mutex
	spans [][]fetcher.Range // by Fetch call
}

func (s *spanFetcher) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	var read []fetcher.Range
	for _, q := range fetcher.Coalesce(ranges, fetcher.DefaultCoalescePolicy()) {
		for _, sp := range q.Spans {
			read = append(read, sp.Range)
		}
	}
	s.mu.Lock()
	s.spans = append(s.spans, read)
	s.mu.Unlock()
	return s.Fetcher.Fetch(ctx, ranges, fn)
}

func TestPrefetchReadsNoByteTwice(t *testing.T) {
	// Small frames close together, asked for in an order unlike the
	// blob's: a fetcher reads the gaps between a request's frames, and
	// those gaps must hold no frame another request asks for.
	b := &blobBuilder{chunkSize: 1000}
	contents := make(map[string][]byte)
	var names []string
	for i := range 400 {
		name := fmt.Sprintf("d/f%03d", i)
		contents[name] = pseudoRandom(2000+i*737%3000, byte(i))
		b.add(&toc.Entry{Name: name, Mode: 0o644}, contents[name])
		names = append(names, name)
	}
	blob, index := b.finish()
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	f := &spanFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))}
	l, err := newLayer(context.Background(), f, index, int64(len(blob)), newConfig([]Option{WithCache(newMapCache())}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Prefetch(context.Background(), wholeFiles(names...)); err != nil {
		t.Fatal(err)
	}
	if len(f.spans) < 3 {
		t.Fatalf("%d fetches, want a prefetch of several", len(f.spans))
	}
	for i, a := range f.spans {
		for _, b := range f.spans[i+1:] {
			for _, x := range a {
				for _, y := range b {
					if x.Offset < y.End() && y.Offset < x.End() {
						t.Fatalf("two fetches read bytes [%d,%d) both", max(x.Offset, y.Offset), min(x.End(), y.End()))
					}
				}
			}
		}
	}
	for _, name := range names {
		if got, err := l.ReadFile(name); err != nil || !bytes.Equal(got, contents[name]) {
			t.Fatalf("%s: %d bytes, %v", name, len(got), err)
		}
	}
}

func TestPrefetchSkipsFramesAReadIsLoading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, f, index, contents := manyFiles(t, 10, false, WithCache(newMapCache()))
		f.gate = make(chan struct{})
		first := index.Entries[0]
		var got []byte
		var readErr error
		var wg sync.WaitGroup
		wg.Go(func() { got, readErr = l.ReadFile(first.Name) })
		waitFor(t, func() bool { return f.calls.Load() == 1 })
		names := entryNames(index)
		p, err := l.StartPrefetch(context.Background(), wholeFiles(names...))
		if err != nil {
			t.Fatal(err)
		}
		close(f.gate)
		wg.Wait()
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		if readErr != nil || !bytes.Equal(got, contents[first.Name]) {
			t.Fatalf("read: %d bytes, %v", len(got), readErr)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, r := range f.asked[1:] {
			for _, c := range first.Chunks {
				if c.FrameOffset < r.End() && r.Offset < c.FrameEnd {
					t.Errorf("prefetch asked for %v, which holds the frame at %d a read was loading", r, c.FrameOffset)
				}
			}
		}
	})
}

// gatedCache is a mapCache whose Add waits for a token on proceed, as a
// busy disk or core would hold a prefetch's decompression back.
type gatedCache struct {
	*mapCache
	proceed chan struct{}
}

func (c *gatedCache) Add(k digest.Digest, d []byte) {
	<-c.proceed
	c.mapCache.Add(k, d)
}

func TestPrefetchBufferBoundsBytesNotCached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &gatedCache{mapCache: newMapCache(), proceed: make(chan struct{})}
		l, f, index, _ := manyFiles(t, 100, false, WithCache(c))
		// A test that fails lets the other chunks in, so that Close returns.
		defer close(c.proceed)
		frame := make(map[digest.Digest]int64) // chunk digest to its frame's length
		var total int64
		for _, e := range index.Entries {
			for _, ch := range e.Chunks {
				frame[ch.Digest] = ch.FrameEnd - ch.FrameOffset
				total += ch.FrameEnd - ch.FrameOffset
			}
		}
		const limit = 8 << 10
		p, err := l.StartPrefetch(context.Background(), wholeFiles(entryNames(index)...), WithPrefetchBuffer(limit))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- p.Wait() }()
		// Let the chunks into the cache one at a time. Whenever all
		// else is blocked, the bytes asked for and not cached yet must
		// fit in the buffer.
		for {
			synctest.Wait()
			f.mu.Lock()
			var asked int64
			for _, r := range f.asked {
				asked += r.Length
			}
			f.mu.Unlock()
			c.mu.Lock()
			var cached int64
			for k := range c.m {
				cached += frame[k]
			}
			c.mu.Unlock()
			if asked-cached > limit {
				t.Fatalf("prefetch asked for %d bytes, %d of them not cached, beyond its buffer of %d", asked, asked-cached, limit)
			}
			select {
			case c.proceed <- struct{}{}:
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				if asked != total || cached != total {
					t.Fatalf("prefetch asked for %d bytes and cached %d, want all %d", asked, cached, total)
				}
				return
			}
		}
	})
}
