package snapshotter_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/lazylayer/lazylayer/cache"
	digest "github.com/opencontainers/go-digest"
)

// TestCacheHelpers checks the e2e test's view of the chunk cache's files
// against a real cache, so that a change of its layout fails here, fast,
// rather than in the fault tests that need containerd.
func TestCacheHelpers(t *testing.T) {
	dir := t.TempDir()
	c, err := cache.NewDir(dir, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	var keys []digest.Digest
	for i, size := range []int{100, 5000, 2 << 20} { // two packed, one file
		data := []byte(fmt.Sprintf("entry %d %0*d", i, size, 0))
		key := digest.FromBytes(data)
		if err := c.Store(key, data); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	if err := c.Remove(keys[0]); err != nil {
		t.Fatal(err)
	}
	if _, entries, _ := cacheFiles(t, dir); len(entries) != 2 {
		t.Fatalf("cacheFiles found %d entries, want 2: %q", len(entries), entries)
	}
	if n := corruptCache(t, dir); n != 2 {
		t.Fatalf("corruptCache damaged %d entries, want 2", n)
	}
	c, err = cache.NewDir(dir, 64<<20) // as after a restart
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range keys[1:] {
		if _, err := c.Load(key); !errors.Is(err, cache.ErrCorrupt) {
			t.Errorf("Load of a damaged entry: %v, want %v", err, cache.ErrCorrupt)
		}
	}
	if got := c.Stats().VerifyFailures; got != 2 {
		t.Errorf("%d verify failures, want 2", got)
	}
	if _, entries, _ := cacheFiles(t, dir); len(entries) != 0 {
		t.Errorf("cacheFiles found %d entries after all were removed", len(entries))
	}
}
