package tartest

import (
	"archive/tar"
	"bytes"
	"io"
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

// TestSparseTar checks that archive/tar reads SparseTar's file as the
// expanded sparse file it describes.
func TestSparseTar(t *testing.T) {
	b, err := SparseTar("dir/s", 100000, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(b))
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 100000)
	copy(want, "hello")
	if h.Name != "dir/s" || h.PAXRecords["GNU.sparse.map"] != "0,5" || !bytes.Equal(got, want) {
		t.Errorf("read %q (records %v), %d bytes; want the expanded sparse file dir/s", h.Name, h.PAXRecords, len(got))
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("after the file: %v, want io.EOF", err)
	}
}
