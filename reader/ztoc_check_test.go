package reader

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/lazylayer/lazylayer/toc/soci"
	"github.com/opencontainers/go-digest"
)

// reencode encodes a forged zTOC and the options that pin it, as a
// caller that trusts it would: WithTOCDigest of the forged bytes.
func reencode(t *testing.T, z *soci.Ztoc) (enc []byte, pin Option) {
	t.Helper()
	enc, err := soci.Encode(z)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(enc)
	return enc, WithTOCDigest(digest.NewDigestFromBytes(digest.SHA256, sum[:]))
}

// fileIndex returns the index of the regular file name in z's table.
func fileIndex(t *testing.T, z *soci.Ztoc, name string) int {
	t.Helper()
	i := slices.IndexFunc(z.Files, func(f soci.File) bool { return f.Name == name })
	if i < 0 {
		t.Fatalf("no %q in the zTOC", name)
	}
	return i
}

// wholeChecks runs every path that checks the whole layer and wants each
// to fail with ErrIndexMismatch.
func wholeChecks(t *testing.T, layer, enc []byte, pin Option) {
	t.Helper()
	digestOf := digest.FromBytes(layer)
	l, err := openZtocLayer(t, layer, enc, pin, WithCache(newMapCache()))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FetchAll(context.Background()); !errors.Is(err, ErrIndexMismatch) {
		t.Errorf("FetchAll: %v, want ErrIndexMismatch", err)
	}
	if _, err := l.WriteTar(context.Background(), io.Discard); !errors.Is(err, ErrIndexMismatch) {
		t.Errorf("WriteTar: %v, want ErrIndexMismatch", err)
	}
	if _, err := openZtocLayer(t, layer, enc, pin, WithLayerDigest(digestOf), WithRequireLayerDigest()); !errors.Is(err, ErrIndexMismatch) {
		t.Errorf("Open with WithRequireLayerDigest: %v, want ErrIndexMismatch", err)
	}
}

// TestZtocFileElsewhere maps names to other files' bytes, and gives files
// another mode, size or link target than their tar headers: reads of them
// fail with ErrIndexMismatch, return no byte, and so does every whole
// check; other files read fine.
func TestZtocFileElsewhere(t *testing.T) {
	data := kindsLayerTar(t)
	want := tartest.FileContents(t, data)
	for _, c := range ztocCases(t, data)[:2] {
		z, _ := makeZtoc(t, c.layer, c.c, 48<<10)
		a, b := fileIndex(t, z, "usr/lib/small/15.txt"), fileIndex(t, z, "usr/lib/text.txt")
		link := slices.IndexFunc(z.Files, func(f soci.File) bool { return f.Type == "hardlink" })
		for _, tc := range []struct {
			name   string
			forge  func(files []soci.File)
			broken []string // the names whose reads must fail
		}{
			{"swapped names", func(f []soci.File) { f[a].Name, f[b].Name = f[b].Name, f[a].Name }, []string{"usr/lib/small/15.txt", "usr/lib/text.txt"}},
			{"mode", func(f []soci.File) { f[a].Mode ^= 0o4000 }, []string{"usr/lib/small/15.txt"}},
			{"size", func(f []soci.File) { f[a].Size-- }, []string{"usr/lib/small/15.txt"}},
			{"link target", func(f []soci.File) { f[link].Linkname = f[a].Name }, []string{cleanName(z.Files[link].Name)}},
		} {
			forged := *z
			forged.Files = slices.Clone(z.Files)
			tc.forge(forged.Files)
			enc, pin := reencode(t, &forged)
			l, err := openZtocLayer(t, c.layer, enc, pin)
			if err != nil {
				t.Fatalf("%s: %s: %v", c.name, tc.name, err)
			}
			for _, name := range tc.broken {
				got, err := l.ReadFile(name)
				if !errors.Is(err, ErrIndexMismatch) || got != nil {
					t.Errorf("%s: %s: ReadFile(%q) = %d bytes, %v; want ErrIndexMismatch", c.name, tc.name, name, len(got), err)
				}
				if f, err := l.Open(name); err == nil {
					n, err := f.(io.ReaderAt).ReadAt(make([]byte, 10), 0)
					if n != 0 || !errors.Is(err, ErrIndexMismatch) {
						t.Errorf("%s: %s: ReadAt of %q: %d bytes, %v; want ErrIndexMismatch", c.name, tc.name, name, n, err)
					}
				}
			}
			if got, err := l.ReadFile("usr/lib/big.bin"); err != nil || !bytes.Equal(got, want["usr/lib/big.bin"]) {
				t.Errorf("%s: %s: an untouched file: %v", c.name, tc.name, err)
			}
			wholeChecks(t, c.layer, enc, pin)
		}
	}
}

// TestZtocHiddenEntry leaves an entry of the tar out of the zTOC: every
// whole check fails; lazy reads fail only for the entry after it, whose
// headers no longer start where the zTOC says.
func TestZtocHiddenEntry(t *testing.T) {
	data := kindsLayerTar(t)
	want := tartest.FileContents(t, data)
	layer := gzipLayer(t, 6, gzip.Header{}, data)
	z, _ := makeZtoc(t, layer, soci.Gzip, 48<<10)
	for _, hidden := range []int{fileIndex(t, z, "usr/lib/small/15.txt"), len(z.Files) - 1} {
		forged := *z
		forged.Files = slices.Delete(slices.Clone(z.Files), hidden, hidden+1)
		enc, pin := reencode(t, &forged)
		l, err := openZtocLayer(t, layer, enc, pin)
		if err != nil {
			t.Fatal(err)
		}
		delete(want, cleanName(z.Files[hidden].Name))
		errs := readEvery(t, l, want)
		for name, err := range errs {
			if hidden+1 == len(z.Files) || name != cleanName(z.Files[hidden+1].Name) || !errors.Is(err, ErrIndexMismatch) {
				t.Errorf("hiding %q: ReadFile(%q): %v", z.Files[hidden].Name, name, err)
			}
		}
		wholeChecks(t, layer, enc, pin)
	}
}

// TestZtocShiftedCheckpoints moves the checkpoints' places in the tar
// stream while they stay at real block boundaries, with windows and span
// digests that match: each span decodes as before, its bytes labelled at
// other places in the tar. No read returns them as a file's.
func TestZtocShiftedCheckpoints(t *testing.T) {
	data := kindsLayerTar(t)
	want := tartest.FileContents(t, data)
	layer := gzipLayer(t, 6, gzip.Header{}, data)
	z, _ := makeZtoc(t, layer, soci.Gzip, 48<<10)
	for _, shift := range []int64{-1024, 512, 4096} {
		enc := forgeZtoc(t, z, func(cp *soci.Checkpoints) {
			for i := 1; i < len(cp.Points); i++ {
				cp.Points[i].Out += shift
			}
		})
		l, err := openZtocLayer(t, layer, enc)
		if err != nil {
			continue // a file the spans no longer cover
		}
		errs := readEvery(t, l, want) // fails the test on wrong bytes
		if len(errs) == 0 {
			t.Errorf("shift %d: every read succeeds", shift)
		}
	}
}

// BenchmarkZtocReadFileCost reads each regular file of a layer of the
// GOROOT net and fmt sources (gzip -6, 1 MiB spans) once, each from a
// layer just opened, and reports the requests and compressed bytes a
// read of one file costs, the check of its tar headers included.
func BenchmarkZtocReadFileCost(b *testing.B) {
	data := gorootTar(b, "src/net", "src/fmt")
	layer := gzipLayer(b, 6, gzip.Header{}, data)
	z, enc := makeZtoc(b, layer, soci.Gzip, 1<<20)
	var names []string
	for _, f := range z.Files {
		if f.Type == "reg" {
			names = append(names, cleanName(f.Name))
		}
	}
	var reqs, fetched int64
	for b.Loop() {
		reqs, fetched = 0, 0
		for _, name := range names {
			c := &countingFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(layer), int64(len(layer)))}
			l, err := Open(context.Background(), c, WithZtoc(enc))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := l.ReadFile(name); err != nil {
				b.Fatal(err)
			}
			l.Close()
			reqs += c.calls.Load()
			for _, r := range c.asked {
				fetched += r.Length
			}
		}
	}
	b.ReportMetric(float64(reqs)/float64(len(names)), "requests/file")
	b.ReportMetric(float64(fetched)/float64(len(names)), "bytes/file")
}

// gorootTar returns a tar of the named directories of GOROOT.
func gorootTar(b testing.TB, dirs ...string) []byte {
	b.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	root := runtime.GOROOT()
	for _, d := range dirs {
		if err := tw.AddFS(os.DirFS(filepath.Join(root, d))); err != nil {
			b.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}
