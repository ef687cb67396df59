package reader

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/registrytest"
	"github.com/lazylayer/lazylayer/writer"
	"github.com/opencontainers/go-digest"
)

func TestBackgroundFetchSurvivesRegistryLoss(t *testing.T) {
	tarData, files := corpusTar(t, 60, 96<<10, 1)
	blob, res := writerBlob(t, tarData, writer.WithChunkSize(16<<10))
	srv := registrytest.NewBlobServer(t, blob)
	f, err := fetcher.NewHTTP(srv.BlobURL())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	l, err := Open(t.Context(), f, WithTOCDigest(res.TOCDigest), WithCache(cache.NewMemory(64<<20)),
		WithBackgroundFetch(func(err error) { done <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// A workload reads while the layer fills in.
	if _, err := l.ReadFile("d03/f0010"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("background fetch: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("background fetch did not finish")
	}
	srv.Close()
	before := f.Stats().Requests
	checkAllFiles(t, l, files)
	if after := f.Stats().Requests; after != before {
		t.Errorf("reads after the background fetch made %d requests", after-before)
	}
}

// cachedCorpusLayer opens a layer of 20 files of 16 KiB chunks with a
// cache, counting the fetches made after Open.
func cachedCorpusLayer(t *testing.T) (*Layer, *countingFetcher) {
	tarData, _ := corpusTar(t, 20, 64<<10, 2)
	blob, _ := writerBlob(t, tarData, writer.WithChunkSize(16<<10))
	cf := &countingFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))}
	l, err := Open(t.Context(), cf, WithCache(newMapCache()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cf.reset()
	return l, cf
}

// probingCache is a map cache that can answer Has, counting Gets.
type probingCache struct {
	*mapCache
	gets atomic.Int64
}

func (c *probingCache) Get(k digest.Digest) ([]byte, bool) {
	c.gets.Add(1)
	return c.mapCache.Get(k)
}

func (c *probingCache) Has(k digest.Digest) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[k]
	return ok
}

// TestFetchAllProbesTheCache: deciding what to fetch asks a Prober's Has,
// rather than load (for a Dir: read and hash) every chunk it holds.
func TestFetchAllProbesTheCache(t *testing.T) {
	tarData, _ := corpusTar(t, 20, 64<<10, 2)
	blob, _ := writerBlob(t, tarData, writer.WithChunkSize(16<<10))
	c := &probingCache{mapCache: newMapCache()}
	cf := &countingFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))}
	l, err := Open(t.Context(), cf, WithCache(c))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.FetchAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	cf.reset()
	c.gets.Store(0)
	if err := l.FetchAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := cf.calls.Load(); n != 0 {
		t.Errorf("FetchAll of a cached layer made %d requests", n)
	}
	if n := c.gets.Load(); n != 0 {
		t.Errorf("FetchAll of a cached layer loaded %d chunks from the cache to see that they are there", n)
	}
}

func TestFetchAllWaitsForItsGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, cf := cachedCorpusLayer(t)

		open := make(chan struct{})
		var gated []int64
		gate := func(ctx context.Context, size int64) error {
			gated = append(gated, size)
			<-open
			return nil
		}
		done := make(chan error, 1)
		go func() { done <- l.FetchAll(context.Background(), WithFetchGate(gate)) }()
		synctest.Wait()
		if n := cf.calls.Load(); n != 0 || len(gated) != 1 {
			t.Fatalf("FetchAll made %d requests before its gate opened (gate called %d times)", n, len(gated))
		}
		close(open)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		var asked, allowed int64
		for _, r := range cf.asked {
			asked += r.Length
		}
		for _, n := range gated {
			allowed += n
		}
		if int64(len(gated)) != cf.calls.Load() || allowed != asked {
			t.Errorf("gate let %d requests of %d bytes through; FetchAll made %d of %d bytes", len(gated), allowed, cf.calls.Load(), asked)
		}
	})
}

func TestFetchAllStopsAtItsGatesError(t *testing.T) {
	l, _, _ := sampleLayer(t, false, WithCache(newMapCache()))
	stop := errors.New("no more")
	err := l.FetchAll(context.Background(), WithFetchGate(func(context.Context, int64) error { return stop }))
	if !errors.Is(err, stop) {
		t.Errorf("FetchAll with a failing gate: %v, want its error", err)
	}
}

func TestFetchAllYieldsToReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, cf := cachedCorpusLayer(t)

		l.foreground.Add(1) // a read is loading a chunk
		done := make(chan error, 1)
		go func() { done <- l.FetchAll(context.Background()) }()
		synctest.Wait() // FetchAll waits, or has fetched
		if n := cf.calls.Load(); n != 0 {
			t.Errorf("FetchAll made %d requests while a read was loading", n)
		}
		l.foreground.Add(-1)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if cf.calls.Load() == 0 {
			t.Error("FetchAll fetched nothing")
		}
		// Everything is cached: a second FetchAll has nothing to do.
		cf.reset()
		if err := l.FetchAll(context.Background()); err != nil || cf.calls.Load() != 0 {
			t.Errorf("second FetchAll = %v after %d requests, want nil after none", err, cf.calls.Load())
		}
	})
}

func TestFetchAllNeedsCacheAndStopsAtClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tarData, _ := corpusTar(t, 10, 64<<10, 3)
		blob, _ := writerBlob(t, tarData, writer.WithChunkSize(16<<10))
		l, err := openBlob(blob)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := l.FetchAll(context.Background()); !errors.Is(err, ErrNoCache) {
			t.Errorf("FetchAll without a cache = %v, want ErrNoCache", err)
		}

		// The same index over a fetcher that never answers, with a
		// background fetch: Close must end it.
		stalled := &countingFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))), gate: make(chan struct{})}
		done := make(chan error, 1)
		bg, err := newLayer(context.Background(), stalled, l.TOC(), int64(len(blob)), newConfig([]Option{
			WithCache(newMapCache()), WithBackgroundFetch(func(err error) { done <- err }),
		}))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return stalled.calls.Load() > 0 })
		bg.Close()
		if err := <-done; !errors.Is(err, fs.ErrClosed) {
			t.Errorf("background fetch after Close = %v, want fs.ErrClosed", err)
		}
	})
}

// lingeringFetcher delivers ranges at once and then takes a second (of
// a synctest bubble's fake time) to finish each Fetch, as an HTTP fetcher
// finishes its request and reports it to its observer after the last
// byte was delivered. It counts the calls in progress.
type lingeringFetcher struct {
	fetcher.Fetcher
	active atomic.Int64
}

func (f *lingeringFetcher) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	f.active.Add(1)
	defer f.active.Add(-1)
	err := f.Fetcher.Fetch(ctx, ranges, fn)
	time.Sleep(time.Second)
	return err
}

// TestFetchAllReturnsAfterItsRequests checks that when FetchAll returns,
// none of its Fetch calls is still in progress: a caller counting
// requests after it must see them all.
func TestFetchAllReturnsAfterItsRequests(t *testing.T) {
	tarData, _ := corpusTar(t, 20, 64<<10, 2)
	blob, _ := writerBlob(t, tarData, writer.WithChunkSize(16<<10))
	index, err := openBlob(blob)
	if err != nil {
		t.Fatal(err)
	}
	index.Close()
	synctest.Test(t, func(t *testing.T) {
		f := &lingeringFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))}
		l, err := newLayer(t.Context(), f, index.TOC(), int64(len(blob)), newConfig([]Option{WithCache(newMapCache())}))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := l.FetchAll(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := f.active.Load(); n != 0 {
			t.Errorf("%d Fetch calls still in progress after FetchAll returned", n)
		}
	})
}

func TestCacheKeysAreWhatFetchAllCaches(t *testing.T) {
	tarData, _ := corpusTar(t, 40, 64<<10, 1)
	blob, res := writerBlob(t, tarData, writer.WithChunkSize(16<<10))
	srv := registrytest.NewBlobServer(t, blob)
	f, err := fetcher.NewHTTP(srv.BlobURL())
	if err != nil {
		t.Fatal(err)
	}
	c := newMapCache()
	l, err := Open(t.Context(), f, WithTOCDigest(res.TOCDigest), WithCache(c))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.FetchAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	keys := l.CacheKeys()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(keys) != len(c.m) {
		t.Errorf("%d cache keys, but FetchAll cached %d chunks", len(keys), len(c.m))
	}
	for _, k := range keys {
		if _, ok := c.m[k]; !ok {
			t.Errorf("cache key %s: FetchAll cached no such chunk", k)
		}
	}
}
