package tartest

import (
	"reflect"
	"testing"
)

// TestSmallKindsMatchesKinds checks the promise of SmallKinds: the entries
// of Kinds, in the same order and with the same headers but for file
// sizes, a quarter of the bytes at most, and still a file of several
// 512 KiB chunks.
func TestSmallKindsMatchesKinds(t *testing.T) {
	full, small := Kinds(), SmallKinds()
	if len(small) != len(full) {
		t.Fatalf("SmallKinds has %d entries, Kinds %d", len(small), len(full))
	}
	var fullSize, smallSize, largest int64
	for i, f := range full {
		s := small[i]
		fh, sh := *f.Header, *s.Header
		fullSize += fh.Size
		smallSize += sh.Size
		largest = max(largest, sh.Size)
		fh.Size, sh.Size = 0, 0
		if !reflect.DeepEqual(fh, sh) {
			t.Errorf("entry %d: SmallKinds header %+v, Kinds %+v", i, s.Header, f.Header)
		}
		if int64(len(s.Content)) != s.Header.Size {
			t.Errorf("%q: %d content bytes, header says %d", sh.Name, len(s.Content), s.Header.Size)
		}
	}
	if smallSize*4 > fullSize || largest <= 2*512<<10 {
		t.Errorf("SmallKinds holds %d bytes (largest file %d), Kinds %d", smallSize, largest, fullSize)
	}
}
