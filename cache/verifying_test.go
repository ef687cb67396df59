package cache

import (
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestMemoryRefusesMismatchedData(t *testing.T) {
	m := NewMemory(1 << 10)
	good := []byte("good")
	m.Add(digest.FromBytes(good), good)
	m.Add(digest.FromBytes(good), []byte("also good?")) // present: ignored
	m.Add(digest.FromString("other"), []byte("bad"))
	m.Add("md5:0123", []byte("bad"))
	if data, ok := m.Get(digest.FromBytes(good)); !ok || string(data) != "good" {
		t.Errorf("Get(good) = %q, %v", data, ok)
	}
	if _, ok := m.Get(digest.FromString("other")); ok {
		t.Error("Memory kept data under another data's key")
	}
	if st := m.Stats(); st.Entries != 1 || st.VerifyFailures != 2 {
		t.Errorf("stats = %+v, want 1 entry and 2 refused", st)
	}
}

// plain is a Cache that promises nothing.
type plain struct{ Cache }

func TestVerifiesContent(t *testing.T) {
	dir, err := NewDir(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	mem := NewMemory(1 << 20)
	for name, tc := range map[string]struct {
		c    Cache
		want bool
	}{
		"memory":       {mem, true},
		"dir":          {dir, true},
		"tiered":       {NewTiered(mem, dir), true},
		"tiered-plain": {NewTiered(mem, plain{dir}), false},
	} {
		v, ok := tc.c.(Verifying)
		if got := ok && v.VerifiesContent(); got != tc.want {
			t.Errorf("%s: VerifiesContent = %v, want %v", name, got, tc.want)
		}
	}
}

// countingCache records how its entries were added.
type countingCache struct {
	Cache
	added, addedVerified int
}

func (c *countingCache) Add(key digest.Digest, data []byte) { c.added++; c.Cache.Add(key, data) }

func (c *countingCache) AddVerified(key digest.Digest, data []byte) {
	c.addedVerified++
	AddVerified(c.Cache, key, data)
}

// TestAddVerified stores verified data in every cache, and checks that
// it reaches tiers through AddVerified only when it is verified: handed to
// Tiered.AddVerified, or promoted from a lower tier that verifies.
func TestAddVerified(t *testing.T) {
	dir, err := NewDir(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	e := newEntry(1, 4096)
	for name, c := range map[string]Cache{"memory": NewMemory(1 << 20), "dir": dir, "plain": plain{NewMemory(1 << 20)}} {
		AddVerified(c, e.key, e.data)
		if got, ok := c.Get(e.key); !ok || string(got) != string(e.data) {
			t.Errorf("%s: Get after AddVerified: %v", name, ok)
		}
	}

	upper := &countingCache{Cache: NewMemory(1 << 20)}
	AddVerified(NewTiered(upper, NewMemory(1<<20)), e.key, e.data)
	if upper.addedVerified != 1 || upper.added != 0 {
		t.Errorf("Tiered.AddVerified: upper tier got %d Add, %d AddVerified; want 0 and 1", upper.added, upper.addedVerified)
	}
	for _, tc := range []struct {
		lower        Cache
		wantVerified bool
	}{{NewMemory(1 << 20), true}, {plain{NewMemory(1 << 20)}, false}} {
		upper := &countingCache{Cache: NewMemory(1 << 20)}
		tc.lower.Add(e.key, e.data)
		if _, ok := NewTiered(upper, tc.lower).Get(e.key); !ok {
			t.Fatal("Tiered.Get missed an entry of its lower tier")
		}
		if got := upper.addedVerified == 1; got != tc.wantVerified || upper.added+upper.addedVerified != 1 {
			t.Errorf("promotion from a lower tier that verifies (%v): %d Add, %d AddVerified", tc.wantVerified, upper.added, upper.addedVerified)
		}
	}
}
