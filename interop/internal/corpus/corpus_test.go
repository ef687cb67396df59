package corpus

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"
)

func TestKindsTarRoundTrips(t *testing.T) {
	want := Kinds()
	tr := tar.NewReader(bytes.NewReader(KindsTar(t)))
	for i := 0; ; i++ {
		h, err := tr.Next()
		if err == io.EOF {
			if i != len(want) {
				t.Fatalf("read %d entries, want %d", i, len(want))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != want[i].Header.Name || h.Typeflag != want[i].Header.Typeflag {
			t.Fatalf("entry %d: got %q type %q, want %q", i, h.Name, h.Typeflag, want[i].Header.Name)
		}
		got, err := io.ReadAll(tr)
		if err != nil || !bytes.Equal(got, want[i].Content) {
			t.Fatalf("entry %q: content differs (err %v)", h.Name, err)
		}
	}
}
