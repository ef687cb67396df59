package reader

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/flate"
	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/toc/soci"
)

// FuzzOpenZtoc opens a layer blob with a zTOC, both arbitrary, and reads
// every file. Nothing may panic or hang, and every byte a read returns
// must be the byte the layer decompresses to at the place the zTOC gives
// it. The seed corpus holds small layers with their zTOCs, gzip (one
// member and several) and uncompressed; TestWriteZtocFuzzSeeds writes it.
func FuzzOpenZtoc(f *testing.F) {
	f.Fuzz(func(t *testing.T, blob, ztoc []byte) { runOne(t, blob, ztoc) })
}

func runOne(t *testing.T, blob, ztoc []byte) {
	{
		l, err := Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))),
			WithZtoc(ztoc), WithMaxChunkSize(1<<20))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open error matches no sentinel: %v", err)
			}
			return
		}
		defer l.Close()
		truth, honest := blob, true
		if l.spans.gzip {
			truth, honest = decodeTruth(l, blob)
		}
		read := make(map[string][]byte) // by content entry
		readFuzzed(t, l, func(p string, data []byte, e *toc.Entry) {
			read[e.Name] = data
			for _, c := range e.Chunks {
				if !honest {
					break
				}
				sp := &l.spans.spans[l.spans.find(c.FrameOffset)]
				at := sp.out + c.InnerOffset
				if at+c.Size > int64(len(truth)) || !bytes.Equal(data[c.Offset:c.Offset+c.Size], truth[at:at+c.Size]) {
					t.Fatalf("%s: returned bytes the layer does not hold at %d", p, at)
				}
			}
		})
		// Once the whole check passed, the tar lists exactly the zTOC's
		// entries, and every byte a lazy read returned is the file's.
		var whole bytes.Buffer
		if _, err := l.WriteTar(context.Background(), &whole); err != nil {
			return
		}
		tr := tar.NewReader(bytes.NewReader(whole.Bytes()))
		for _, e := range l.TOC().Entries {
			h, err := tr.Next()
			if err != nil || cleanName(h.Name) != e.Name {
				t.Fatalf("the whole check passed, but the tar does not list %q next: %v", e.Name, err)
			}
		}
		if _, err := tr.Next(); err != io.EOF {
			t.Fatalf("the whole check passed, but the tar lists more than the zTOC: %v", err)
		}
		files := tartest.FileContents(t, whole.Bytes())
		for name, data := range read {
			if !bytes.Equal(files[name], data) {
				t.Fatalf("%q: a lazy read returned bytes the tar does not hold for it", name)
			}
		}
	}
}

// decodeTruth decodes the gzip blob as far as it decodes, and reports
// whether every checkpoint of l lies where the zTOC says, between two
// blocks: what a zTOC says of places in the stream is trusted (see the
// package documentation); every byte a read returns must then be the
// stream's byte at the place the zTOC gives it, whatever the windows.
func decodeTruth(l *Layer, blob []byte) ([]byte, bool) {
	type point struct {
		in, out int64
		bits    uint8
	}
	real := make(map[point]bool)
	zr := flate.NewReader(bytes.NewReader(blob))
	zr.OnBoundary = func(b *flate.Boundary) error {
		real[point{b.In, b.Out, b.Bits}] = true
		return nil
	}
	truth, _ := io.ReadAll(io.LimitReader(zr, 16<<20))
	for _, sp := range l.spans.spans {
		if !real[point{sp.in, sp.out, sp.bits}] {
			return truth, false
		}
	}
	return truth, true
}

// TestWriteZtocFuzzSeeds writes FuzzOpenZtoc's seed corpus when
// READER_WRITE_SEEDS is set.
func TestWriteZtocFuzzSeeds(t *testing.T) {
	if os.Getenv("READER_WRITE_SEEDS") == "" {
		t.Skip("set READER_WRITE_SEEDS to write testdata/fuzz/FuzzOpenZtoc")
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: modTime})
	for i, size := range []int{3, 40 << 10, 0, 25 << 10} {
		content := pseudoRandom(size, byte(i))
		if i == 3 {
			content = bytes.Repeat([]byte("text of a file, repeated. "), size/26)
		}
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d/f%d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content)), ModTime: modTime})
		tw.Write(content)
	}
	tw.WriteHeader(&tar.Header{Name: "d/l", Typeflag: tar.TypeLink, Linkname: "d/f1", ModTime: modTime})
	tw.Close()
	data := tb.Bytes()
	dir := filepath.Join("testdata", "fuzz", "FuzzOpenZtoc")
	os.MkdirAll(dir, 0o755)
	for _, c := range []ztocCase{
		{"gzip", gzipLayer(t, 6, gzip.Header{Name: "n"}, data), soci.Gzip},
		{"multi-member", gzipLayer(t, 9, gzip.Header{}, data, len(data)/2), soci.Gzip},
		{"uncompressed", data, soci.Uncompressed},
	} {
		_, enc := makeZtoc(t, c.layer, c.c, 16<<10)
		seed := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", c.layer, enc)
		if err := os.WriteFile(filepath.Join(dir, c.name), seed, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
