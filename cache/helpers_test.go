package cache

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/require"
)

// entry is a value and its key.
type entry struct {
	key  digest.Digest
	data []byte
}

// newEntry returns a deterministic entry of size bytes; distinct seeds give
// distinct content.
func newEntry(seed uint64, size int) entry {
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(seed, 0x6c617a79))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	return entry{key: digest.FromBytes(data), data: data}
}

func newEntries(n, size int) []entry {
	es := make([]entry, n)
	for i := range es {
		es[i] = newEntry(uint64(i), size)
	}
	return es
}

// hammer runs 64 goroutines that add and get overlapping entries of c and
// fails the test if a hit ever returns bytes other than those added. It
// returns the number of Get calls made.
func hammer(t *testing.T, c Cache, entries []entry, opsPerGoroutine int) (gets uint64) {
	t.Helper()
	var getCount atomic.Uint64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range opsPerGoroutine {
				e := entries[rng.IntN(len(entries))]
				if rng.IntN(2) == 0 {
					c.Add(e.key, e.data)
					continue
				}
				getCount.Add(1)
				if got, ok := c.Get(e.key); ok && string(got) != string(e.data) {
					errs <- fmt.Errorf("Get(%s) returned wrong bytes", e.key)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	return getCount.Load()
}
