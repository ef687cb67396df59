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
