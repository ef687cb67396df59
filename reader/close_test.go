package reader

import (
	"bytes"
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/writer"
	"github.com/opencontainers/go-digest"
)

// lateCache is a cache that counts what is added to it once closed is
// set.
type lateCache struct {
	*mapCache
	closed atomic.Bool
	late   atomic.Int64
}

func (c *lateCache) Add(k digest.Digest, d []byte) {
	if c.closed.Load() {
		c.late.Add(1)
	}
	c.mapCache.Add(k, d)
}

// stubbornFetcher holds every Fetch until release is closed or its
// context is done, and then delivers the bytes all the same, as a fetcher
// whose answer was already under way would. It counts the calls in
// progress.
type stubbornFetcher struct {
	fetcher.Fetcher
	release chan struct{}
	active  atomic.Int64
	entered chan struct{} // receives once per call, if there is room
}

func (s *stubbornFetcher) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	s.active.Add(1)
	defer s.active.Add(-1)
	select {
	case s.entered <- struct{}{}:
	default:
	}
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	return s.Fetcher.Fetch(context.Background(), ranges, fn)
}

// TestCloseWaitsForEverythingItStarted closes a layer while a background
// fetch, a prefetch, sequential reads with read-ahead and random reads
// all wait on the fetcher. Once Close returns, no fetch may still be in
// progress and nothing may be added to the cache: a daemon may then
// delete the cache.
func TestCloseWaitsForEverythingItStarted(t *testing.T) {
	tarData, files := corpusTar(t, 12, 96<<10, 4)
	blob, res := writerBlob(t, tarData, writer.WithChunkSize(8<<10))
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	index, err := openBlob(blob, WithTOCDigest(res.TOCDigest))
	if err != nil {
		t.Fatal(err)
	}
	index.Close()
	iterations := 50
	if testing.Short() {
		iterations = 10
	}
	for range iterations {
		c := &lateCache{mapCache: newMapCache()}
		sf := &stubbornFetcher{
			Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))),
			release: make(chan struct{}),
			entered: make(chan struct{}, 1),
		}
		l, err := newLayer(t.Context(), sf, index.TOC(), int64(len(blob)), newConfig([]Option{WithCache(c), WithBackgroundFetch(nil)}))
		if err != nil {
			t.Fatal(err)
		}
		<-sf.entered // the background fetch, or one of the reads, waits

		var readers sync.WaitGroup
		for k, name := range names[:4] {
			readers.Go(func() {
				f, err := l.Open(name)
				if err != nil {
					return
				}
				defer f.Close()
				if k%2 == 0 {
					io.Copy(io.Discard, io.LimitReader(f, 64<<10)) // sequential: reads ahead
				} else {
					f.(io.ReaderAt).ReadAt(make([]byte, 100), 40<<10)
				}
			})
		}
		p, err := l.StartPrefetch(context.Background(), wholeFiles(names[4:]...))
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		c.closed.Store(true)
		active := sf.active.Load()
		close(sf.release)
		readers.Wait()
		p.Wait()
		if active != 0 {
			t.Fatalf("%d fetches still in progress after Close returned", active)
		}
		if n := c.late.Load(); n != 0 {
			t.Fatalf("%d chunks added to the cache after Close returned", n)
		}
	}
}
