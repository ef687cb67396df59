package cache

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

// FuzzDirPack opens a Dir on a directory whose only pack holds arbitrary
// bytes and loads what the Dir finds in it: no input may make it panic or
// return bytes that do not match their key. Seeds are in
// testdata/fuzz/FuzzDirPack: valid packs, torn and damaged ones.
func FuzzDirPack(f *testing.F) {
	es := newEntries(2, 100)
	var valid []byte
	for _, e := range es {
		valid = appendRecord(valid, e.key, e.data)
	}
	f.Add(valid)
	// tmpfs, where there is one: creating a file costs a millisecond on
	// some disks, and each input may need its pack created anew.
	parent := f.TempDir()
	if info, err := os.Stat("/dev/shm"); err == nil && info.IsDir() {
		parent = "/dev/shm"
	}
	root, err := os.MkdirTemp(parent, "FuzzDirPack")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(root) })
	packPath := filepath.Join(root, packDirName, "0123456789abcdef"+packSuffix)
	if err := os.MkdirAll(filepath.Dir(packPath), 0o700); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, pack []byte) {
		if err := os.WriteFile(packPath, pack, 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := NewDir(root, 4<<10)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if st := d.Stats(); st.Entries < 0 || st.Bytes < 0 || st.Bytes > int64(len(pack)) {
			t.Fatalf("stats %+v for a pack of %d bytes", st, len(pack))
		}
		d.idx.Lock()
		keys := []digest.Digest{es[0].key, es[1].key}
		for k := range d.index {
			keys = append(keys, k)
		}
		d.idx.Unlock()
		for i, key := range keys {
			data, err := d.Load(key)
			if err == nil && key.Algorithm().FromBytes(data) != key {
				t.Fatalf("Load(%s) returned bytes of another key", key)
			}
			if i == len(keys)-1 {
				if err := d.Remove(key); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
