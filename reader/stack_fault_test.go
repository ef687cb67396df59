package reader

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/registrytest"
	"github.com/lazylayer/lazylayer/writer"
	"github.com/opencontainers/go-digest"
)

// TestStackUnderFaults reads random byte ranges of random files through
// the whole stack (Open over an HTTP fetcher) from a server that fails
// one request in five in every way it knows. Every read must return the
// source's bytes or an error: never a wrong byte, and never hang.
func TestStackUnderFaults(t *testing.T) {
	const (
		workers       = 8
		readsUncached = 8000 // every read reaches the server
		readsCached   = 2000 // reads share a cache, as a snapshotter would
		// A worker opens a new layer, with a new fetcher, after this many
		// reads: the fetcher remembers a server that ignored a range
		// once, and would read from the blob's start forever after.
		reopenEvery = 250
	)
	tarData, files := corpusTar(t, 40, 64<<10, 21)
	blob, res := writerBlob(t, tarData, writer.WithChunkSize(4<<10))
	srv := registrytest.NewBlobServer(t, blob,
		registrytest.WithFaultRate(0.2, 42),
		registrytest.WithRetryAfter("0"),
		registrytest.WithSlowInterval(5*time.Millisecond))
	names := sortedNames(files)

	var mu sync.Mutex
	errorKinds := make(map[string]int)
	var reads, failed int

	run := func(worker, n int, c cache.Cache) {
		rng := rand.New(rand.NewPCG(uint64(worker), uint64(n)))
		var l *Layer
		defer func() {
			if l != nil {
				l.Close()
			}
		}()
		for k := range n {
			if k%reopenEvery == 0 {
				if l != nil {
					l.Close()
				}
				l = openFaulty(t, srv, res.TOCDigest, c)
				if l == nil {
					return
				}
			}
			name := names[rng.IntN(len(names))]
			want := files[name]
			off := rng.Int64N(int64(len(want)) + 1)
			length := rng.Int64N(12<<10) + 1
			if rng.IntN(10) == 0 {
				length = int64(len(want)) + 1
			}
			var got []byte
			var err error
			if rng.IntN(10) == 0 {
				// Stream from off in small reads: read-ahead under faults.
				got, err = streamFrom(l, name, off)
				length = int64(len(want))
			} else {
				got, err = readRange(l, name, off, length)
			}
			end := min(off+length, int64(len(want)))
			mu.Lock()
			reads++
			switch {
			case err != nil:
				failed++
				errorKinds[faultKind(err)]++
			case !bytes.Equal(got, want[off:end]):
				t.Errorf("%s [%d+%d): got %d bytes that differ from the source", name, off, length, len(got))
			}
			mu.Unlock()
		}
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() { run(w, readsUncached/workers, nil) })
		}
		shared := cache.NewMemory(8 << 20)
		for w := range workers {
			wg.Go(func() { run(workers+w, readsCached/workers, shared) })
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		t.Fatal("reads under faults did not finish: something hangs")
	}

	kinds := make([]string, 0, len(errorKinds))
	for k := range errorKinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var summary strings.Builder
	for _, k := range kinds {
		summary.WriteString(" " + k + "=" + strconv.Itoa(errorKinds[k]))
	}
	faults := make(map[registrytest.Fault]int)
	for _, l := range srv.Log() {
		faults[l.Fault]++
	}
	t.Logf("%d reads, %d failed:%s; server faults: %v", reads, failed, summary.String(), faults)
	if reads != readsUncached+readsCached {
		t.Errorf("%d reads done, want %d", reads, readsUncached+readsCached)
	}
	if errorKinds["unclassified"] > 0 {
		t.Errorf("%d reads failed with an unexpected error", errorKinds["unclassified"])
	}
}

// openFaulty opens the server's layer through a fetcher made for faults:
// short request timeouts, quick retries. Open itself may fail under
// faults; it is retried.
func openFaulty(t *testing.T, srv *registrytest.BlobServer, tocDigest digest.Digest, c cache.Cache) *Layer {
	for attempt := 0; ; attempt++ {
		f, err := fetcher.NewHTTP(srv.BlobURL(),
			fetcher.WithRequestTimeout(300*time.Millisecond),
			fetcher.WithRetry(5, time.Millisecond))
		if err != nil {
			t.Error(err)
			return nil
		}
		opts := []Option{WithTOCDigest(tocDigest)}
		if c != nil {
			opts = append(opts, WithCache(c))
		}
		l, err := Open(context.Background(), f, opts...)
		if err == nil {
			return l
		}
		if attempt == 10 {
			t.Errorf("Open failed 10 times under faults: %v", err)
			return nil
		}
	}
}

// readRange reads [off, off+length) of name with ReadAt on a fresh
// handle, which remembers no chunk.
func readRange(l *Layer, name string, off, length int64) ([]byte, error) {
	f, err := l.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, length)
	n, err := f.(io.ReaderAt).ReadAt(buf, off)
	if err == io.EOF {
		err = nil
	}
	return buf[:n], err
}

// streamFrom reads name from off to its end in 4 KiB reads, as a
// program streaming a file does, so that the file reads ahead.
func streamFrom(l *Layer, name string, off int64) ([]byte, error) {
	f, err := l.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.(io.Seeker).Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	_, err = io.CopyBuffer(struct{ io.Writer }{&out}, readerOnly{f}, make([]byte, 4<<10))
	return out.Bytes(), err
}

// faultKind names the class of a read error under faults.
func faultKind(err error) string {
	var status *fetcher.StatusError
	switch {
	case errors.Is(err, ErrChunkDigest):
		return "chunk-digest"
	case errors.Is(err, ErrCorrupt):
		return "corrupt-frame"
	case errors.Is(err, fetcher.ErrBadContentRange):
		return "bad-content-range"
	case errors.Is(err, fetcher.ErrBadResponse):
		return "bad-response"
	case errors.As(err, &status):
		return "status-" + strconv.Itoa(status.Code)
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "deadline exceeded") || strings.Contains(err.Error(), "Timeout"):
		return "timeout"
	case errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "connection reset"):
		return "connection"
	}
	return "unclassified"
}
