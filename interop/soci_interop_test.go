package interop

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/awslabs/soci-snapshotter/ztoc"
	"github.com/awslabs/soci-snapshotter/ztoc/compression"

	"github.com/lazylayer/lazylayer/interop/internal/corpus"
	"github.com/lazylayer/lazylayer/toc/soci"
)

// sociTool is the build tool identifier both builders write: it is part
// of the zTOC's bytes.
const sociTool = "lazylayer-interop"

// A sociLayer is a layer on disk, as soci's builder wants it, with the
// tar stream it holds.
type sociLayer struct {
	name     string
	path     string
	tar      []byte
	gzip     bool
	spanSize int64
}

// gzipLayer writes tarData as a gzip layer of one member per cut, with
// header h, and returns its path.
func gzipLayer(t testing.TB, name string, tarData []byte, level int, h gzip.Header, memberSize int) string {
	t.Helper()
	var buf bytes.Buffer
	for start := 0; start < len(tarData) || start == 0; start += memberSize {
		w, err := gzip.NewWriterLevel(&buf, level)
		if err != nil {
			t.Fatal(err)
		}
		w.Header = h
		if _, err := w.Write(tarData[start:min(start+memberSize, len(tarData))]); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return writeLayer(t, name, buf.Bytes())
}

func writeLayer(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func sociLayers(t *testing.T) []sociLayer {
	kinds := corpus.KindsTar(t)
	one := 1 << 30
	layers := []sociLayer{
		{name: "kinds", path: gzipLayer(t, "kinds.tar.gz", kinds, 6, gzip.Header{}, one), tar: kinds, gzip: true, spanSize: 256 << 10},
		{name: "kinds multi-member", path: gzipLayer(t, "members.tar.gz", kinds, 6, gzip.Header{}, 100<<10), tar: kinds, gzip: true, spanSize: 256 << 10},
		{name: "kinds header fields", path: gzipLayer(t, "fields.tar.gz", kinds, 9,
			gzip.Header{Name: "layer.tar", Comment: "a comment", Extra: []byte("extra\x00field")}, one), tar: kinds, gzip: true, spanSize: 256 << 10},
		{name: "kinds uncompressed", path: writeLayer(t, "kinds.tar", kinds), tar: kinds, spanSize: 256 << 10},
	}
	// A gzip of the GNU tool, not of compress/gzip, when there is one.
	if _, err := exec.LookPath("gzip"); err == nil {
		out, err := exec.Command("sh", "-c", "gzip -n -6 < "+layers[3].path).Output()
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, sociLayer{name: "kinds gnu gzip", path: writeLayer(t, "gnu.tar.gz", out), tar: kinds, gzip: true, spanSize: 256 << 10})
	}
	if testing.Short() {
		// A GOROOT subtree stands for GOROOT at each level.
		net := goSrcTar(t, "net")
		for _, level := range []int{1, 6, 9} {
			layers = append(layers, sociLayer{name: "goroot/src/net level " + string(rune('0'+level)),
				path: gzipLayer(t, "net.tar.gz", net, level, gzip.Header{}, one), tar: net, gzip: true, spanSize: 1 << 20})
		}
	} else {
		goroot := corpus.GorootBytes(t)
		for _, level := range []int{1, 6, 9} {
			layers = append(layers, sociLayer{name: "goroot level " + string(rune('0'+level)),
				path: gzipLayer(t, "goroot.tar.gz", goroot, level, gzip.Header{}, one), tar: goroot, gzip: true, spanSize: 4 << 20})
		}
	}
	return layers
}

// theirZtoc builds soci-snapshotter's zTOC of l and marshals it.
func theirZtoc(t testing.TB, l sociLayer) []byte {
	t.Helper()
	alg := compression.Uncompressed
	if l.gzip {
		alg = compression.Gzip
	}
	z, err := ztoc.NewBuilder(sociTool).BuildZtoc(l.path, l.spanSize, ztoc.WithCompression(alg))
	if err != nil {
		t.Fatalf("soci builds the zTOC of %s: %v", l.name, err)
	}
	r, _, err := ztoc.Marshal(z)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ourZtoc indexes l with soci.Index and encodes the zTOC.
func ourZtoc(t testing.TB, l sociLayer) []byte {
	t.Helper()
	f, err := os.Open(l.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := soci.Uncompressed
	if l.gzip {
		c = soci.Gzip
	}
	z, err := soci.Index(context.Background(), f, c, soci.WithSpanSize(l.spanSize), soci.WithBuildToolIdentifier(sociTool))
	if err != nil {
		t.Fatalf("index %s: %v", l.name, err)
	}
	b, err := soci.Encode(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSociZtocInterop proves the zTOC both ways against soci-snapshotter's
// ztoc package: their zTOC decodes through ours and encodes back to the
// same bytes; our indexer makes their zTOC byte for byte; and their
// reader extracts files through our zTOC.
func TestSociZtocInterop(t *testing.T) {
	for _, l := range sociLayers(t) {
		t.Run(l.name, func(t *testing.T) {
			theirs := theirZtoc(t, l)
			z, err := soci.Decode(theirs)
			if err != nil {
				t.Fatalf("decode their zTOC: %v", err)
			}
			again, err := soci.Encode(z)
			if err != nil || !bytes.Equal(again, theirs) {
				t.Fatalf("their zTOC (%d bytes) encodes back to %d other bytes: %v", len(theirs), len(again), err)
			}

			t.Logf("their zTOC: %d bytes, %d files, %d spans", len(theirs), len(z.Files), len(z.SpanDigests))
			ours := ourZtoc(t, l)
			if !bytes.Equal(ours, theirs) {
				diffZtocs(t, ours, theirs)
			}

			zt, err := ztoc.Unmarshal(bytes.NewReader(ours))
			if err != nil {
				t.Fatalf("soci unmarshals our zTOC: %v", err)
			}
			extractThroughSoci(t, l, zt)
		})
	}
}

// diffZtocs fails the test with where two zTOCs differ first.
func diffZtocs(t *testing.T, ours, theirs []byte) {
	t.Helper()
	a, errA := soci.Decode(ours)
	b, errB := soci.Decode(theirs)
	if errA != nil || errB != nil {
		t.Fatalf("zTOCs differ (%d, %d bytes); decode: %v, %v", len(ours), len(theirs), errA, errB)
	}
	switch {
	case len(a.Files) != len(b.Files):
		t.Fatalf("zTOCs differ: %d files, theirs %d", len(a.Files), len(b.Files))
	case a.UncompressedArchiveSize != b.UncompressedArchiveSize || a.CompressedArchiveSize != b.CompressedArchiveSize:
		t.Fatalf("zTOCs differ: sizes %d, %d, theirs %d, %d", a.CompressedArchiveSize, a.UncompressedArchiveSize, b.CompressedArchiveSize, b.UncompressedArchiveSize)
	case len(a.SpanDigests) != len(b.SpanDigests):
		t.Fatalf("zTOCs differ: %d spans, theirs %d", len(a.SpanDigests), len(b.SpanDigests))
	}
	for i := range a.Files {
		if fa, fb := a.Files[i], b.Files[i]; fa.Name != fb.Name || fa.Offset != fb.Offset || !fa.ModTime.Equal(fb.ModTime) || fa.ModTime.String() != fb.ModTime.String() {
			t.Fatalf("zTOCs differ at file %d: %+v, theirs %+v", i, fa, fb)
		}
	}
	if !bytes.Equal(a.Checkpoints, b.Checkpoints) {
		ca, _ := soci.DecodeCheckpoints(a.Checkpoints)
		cb, _ := soci.DecodeCheckpoints(b.Checkpoints)
		if ca != nil && cb != nil {
			for i := range min(len(ca.Points), len(cb.Points)) {
				if pa, pb := ca.Points[i], cb.Points[i]; pa.In != pb.In || pa.Out != pb.Out || pa.Bits != pb.Bits || !bytes.Equal(pa.Window, pb.Window) {
					t.Fatalf("checkpoint %d: ours %d, %d, %d; theirs %d, %d, %d", i, pa.In, pa.Out, pa.Bits, pb.In, pb.Out, pb.Bits)
				}
			}
		}
		t.Fatalf("checkpoint blobs differ")
	}
	for i := range a.SpanDigests {
		if a.SpanDigests[i] != b.SpanDigests[i] {
			t.Fatalf("span %d digest differs", i)
		}
	}
	t.Fatalf("zTOCs differ (%d, %d bytes) in a field the diff does not show", len(ours), len(theirs))
}

// maxSociExtracts bounds the files extractThroughSoci extracts.
const maxSociExtracts = 300

// extractThroughSoci extracts every regular file (a spread of
// maxSociExtracts of a larger layer) with soci's reader and our zTOC, and
// compares them with the tar's.
func extractThroughSoci(t *testing.T, l sociLayer, zt *ztoc.Ztoc) {
	t.Helper()
	contents := map[string][]byte{}
	var names []string
	r := bytes.NewReader(l.tar)
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg || h.Size == 0 {
			continue
		}
		if _, dup := contents[h.Name]; dup {
			continue
		}
		at := len(l.tar) - r.Len() // the data, after the headers tr read
		contents[h.Name] = l.tar[at : at+int(h.Size)]
		names = append(names, h.Name)
	}
	f, err := os.Open(l.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	// soci's extractor holds on to memory per call (22 GB for GOROOT's
	// 16,702 files): a spread of at most maxSociExtracts files.
	if len(names) > maxSociExtracts {
		step := float64(len(names)) / maxSociExtracts
		var spread []string
		for k := range maxSociExtracts {
			spread = append(spread, names[int(float64(k)*step)])
		}
		names = append(spread, names[len(names)-1])
	}
	for _, name := range names {
		got, err := zt.ExtractFile(io.NewSectionReader(f, 0, st.Size()), name)
		if err != nil || !bytes.Equal(got, contents[name]) {
			t.Fatalf("soci extracts %q through our zTOC: %d bytes, %v; want %d bytes", name, len(got), err, len(contents[name]))
		}
	}
}
