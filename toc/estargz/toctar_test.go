package estargz

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// TestEStargzTOCTarIsMemberContents checks that TOCTar returns what
// the member WriteTOCMember writes decompresses to, so a writer may
// hash it for the DiffID, and that it is a tar stream of the TOC alone.
func TestEStargzTOCTarIsMemberContents(t *testing.T) {
	large, _ := syntheticTOC(3000)
	largeJSON, err := Marshal(large)
	if err != nil {
		t.Fatal(err)
	}
	for _, js := range [][]byte{{}, []byte(`{"version":1,"entries":[]}`), bytes.Repeat([]byte("x"), 512), largeJSON} {
		tocTar, err := TOCTar(js)
		if err != nil {
			t.Fatal(err)
		}
		if len(tocTar)%512 != 0 {
			t.Errorf("%d-byte TOC: tar is %d bytes, not whole blocks", len(js), len(tocTar))
		}
		var member bytes.Buffer
		if err := WriteTOCMember(&member, js, gzip.BestCompression); err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(&member)
		if err != nil {
			t.Fatal(err)
		}
		inflated, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(inflated, tocTar) {
			t.Fatalf("%d-byte TOC: member inflates to %d bytes, TOCTar returned %d different ones", len(js), len(inflated), len(tocTar))
		}
		tr := tar.NewReader(bytes.NewReader(tocTar))
		hdr, err := tr.Next()
		if err != nil || hdr.Name != TOCTarName || hdr.Typeflag != tar.TypeReg {
			t.Fatalf("%d-byte TOC: first tar entry %+v, %v", len(js), hdr, err)
		}
		if body, err := io.ReadAll(tr); err != nil || !bytes.Equal(body, js) {
			t.Fatalf("%d-byte TOC: tar entry holds %d bytes, %v", len(js), len(body), err)
		}
		if _, err := tr.Next(); err != io.EOF {
			t.Fatalf("%d-byte TOC: after the TOC: %v, want io.EOF", len(js), err)
		}
	}
}
