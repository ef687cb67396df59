package reader

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/registrytest"
	"github.com/lazylayer/lazylayer/writer"
)

// TestManyGoroutinesShareALayer has 64 goroutines read overlapping files
// through one Layer and one cache, whole, streamed and at random
// offsets. Run with -race, it checks that loads, read-ahead, the cache and
// the flight group share state safely; every byte is compared.
func TestManyGoroutinesShareALayer(t *testing.T) {
	tarData, files := corpusTar(t, 24, 192<<10, 31)
	blob, res := writerBlob(t, tarData, writer.WithChunkSize(8<<10))
	srv := registrytest.NewBlobServer(t, blob)
	f, err := fetcher.NewHTTP(srv.BlobURL())
	if err != nil {
		t.Fatal(err)
	}
	// A cache smaller than the layer, so that chunks are evicted while
	// others read them.
	l, err := Open(t.Context(), f, WithTOCDigest(res.TOCDigest), WithCache(cache.NewMemory(512<<10)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	names := sortedNames(files)

	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range 12 {
				name := names[rng.IntN(len(names))]
				if err := readOneWay(l, name, files[name], rng); err != nil {
					t.Errorf("goroutine %d: %v", g, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// readOneWay reads name in one of three ways and compares it with want.
func readOneWay(l *Layer, name string, want []byte, rng *rand.Rand) error {
	switch rng.IntN(3) {
	case 0:
		got, err := l.ReadFile(name)
		if err != nil || !bytes.Equal(got, want) {
			return fmt.Errorf("ReadFile(%q) = %d bytes, %v", name, len(got), err)
		}
	case 1:
		file, err := l.Open(name)
		if err != nil {
			return err
		}
		defer file.Close()
		var got bytes.Buffer
		if _, err := io.CopyBuffer(&got, readerOnly{file}, make([]byte, 4<<10)); err != nil || !bytes.Equal(got.Bytes(), want) {
			return fmt.Errorf("streaming %q = %d bytes, %v", name, got.Len(), err)
		}
	default:
		off := rng.IntN(len(want) + 1)
		n := rng.IntN(20<<10) + 1
		got, err := readRange(l, name, int64(off), int64(n))
		if err != nil || !bytes.Equal(got, want[off:min(off+n, len(want))]) {
			return fmt.Errorf("%q [%d+%d) = %d bytes, %v", name, off, n, len(got), err)
		}
	}
	return nil
}
