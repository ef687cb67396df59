//go:build linux

package writer

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lazylayer/lazylayer/toc/estargz"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// These tests make their inputs with GNU tar and check the outputs with
// real tar implementations, GNU tar and Python's tarfile, as well as our
// own lazy reader.

// gnuTar returns the path of GNU tar, or skips the test.
func gnuTar(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("tar")
	if err == nil {
		if out, err := exec.Command(path, "--version").Output(); err == nil && bytes.Contains(out, []byte("GNU tar")) {
			return path
		}
	}
	t.Skip("GNU tar not found: install the Debian package tar")
	return ""
}

// createTar runs GNU tar in dir with args and returns the archive it
// writes to stdout.
func createTar(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(gnuTar(t), append([]string{"-C", dir, "-cf", "-"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tar %q: %v: %s", args, err, stderr.Bytes())
	}
	return out
}

// extractWithGNUTar extracts archive with GNU tar and returns the regular
// files it made, by slash-separated path.
func extractWithGNUTar(t *testing.T, archive []byte) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(gnuTar(t), "-C", dir, "-xf", "-")
	cmd.Stdin = bytes.NewReader(archive)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GNU tar -x: %v: %s", err, out)
	}
	return regularFiles(t, dir)
}

// extractWithPython extracts archive with Python's tarfile and returns the
// regular files it made, or skips the test without python3.
func extractWithPython(t *testing.T, archive []byte) map[string][]byte {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found: install the Debian package python3")
	}
	dir := t.TempDir()
	const script = `import sys, tarfile
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tf:
    tf.extractall(sys.argv[1], **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
`
	cmd := exec.Command(python, "-c", script, dir)
	cmd.Stdin = bytes.NewReader(archive)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python3 tarfile: %v: %s", err, out)
	}
	return regularFiles(t, dir)
}

// regularFiles returns the contents of the regular files under dir.
func regularFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// tarFiles returns the regular files of a tar stream as archive/tar reads
// them (sparse files expanded), by cleaned name.
func tarFiles(t *testing.T, archive []byte) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg || isSparse(h) {
			if files[cleanName(h.Name)], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// openLazily opens blob with our lazy reader, pinned to the TOC digest
// Build reported.
func openLazily(t *testing.T, blob []byte, res *Result) *reader.Layer {
	t.Helper()
	l, err := reader.Open(t.Context(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))), reader.WithTOCDigest(res.TOCDigest))
	if err != nil {
		t.Fatalf("lazy reader: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// sameFiles reports, as test errors, how got differs from want.
func sameFiles(t *testing.T, what string, got, want map[string][]byte) {
	t.Helper()
	for name, w := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s: no file %q", what, name)
		} else if !bytes.Equal(g, w) {
			t.Errorf("%s: %q has %d bytes (%s), want %d (%s)", what, name, len(g), digest.FromBytes(g), len(w), digest.FromBytes(w))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: unexpected file %q", what, name)
		}
	}
}

// lazyFiles reads every file of want through l.
func lazyFiles(t *testing.T, l *reader.Layer, want map[string][]byte) map[string][]byte {
	t.Helper()
	got := make(map[string][]byte)
	for name := range want {
		b, err := l.ReadFile(name)
		if err != nil {
			t.Errorf("lazy reader: %v", err)
			continue
		}
		got[name] = b
	}
	return got
}

// sparseTree writes files that GNU tar --sparse stores as sparse maps:
// the 8 MiB file of a few bytes at 4,000,000 that first showed the bug,
// one whose data ends it, one without data, and a plain file.
func sparseTree(t *testing.T) (dir string, names []string) {
	t.Helper()
	dir = t.TempDir()
	write := func(name string, size int64, at int64, data string) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte(data), at); err != nil {
			t.Fatal(err)
		}
	}
	write("s.bin", 8<<20, 4_000_000, "hello sparse")
	write("tail.bin", 3<<20, 3<<20-5, "tail\n")
	write("hole.bin", 1<<20, 0, "")
	write("p.txt", 0, 0, "plain\n")
	return dir, []string{"s.bin", "tail.bin", "hole.bin", "p.txt"}
}

// TestSparseFilesWithRealTar builds sparse files written by GNU tar in
// every sparse format it has. eStargz must hold the expanded files: GNU
// tar, Python's tarfile and our lazy reader all read back the original
// files, and the DiffID is the gunzipped stream's. zstd:chunked, which
// must decompress to the input byte for byte, must refuse them, naming
// the file.
func TestSparseFilesWithRealTar(t *testing.T) {
	src, names := sparseTree(t)
	want := make(map[string][]byte)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		want[name] = b
	}
	for name, args := range map[string][]string{
		"gnu":    {"--format=gnu"},
		"oldgnu": {"--format=oldgnu"},
		"pax":    {"--format=pax"},
		"pax0.0": {"--format=pax", "--sparse-version=0.0"},
		"pax0.1": {"--format=pax", "--sparse-version=0.1"},
		"pax1.0": {"--format=pax", "--sparse-version=1.0"},
	} {
		t.Run(name, func(t *testing.T) {
			input := createTar(t, src, append(append(args, "--sparse"), names...)...)
			if h, err := tar.NewReader(bytes.NewReader(input)).Next(); err != nil || !isSparse(h) {
				t.Fatalf("GNU tar %q did not write s.bin as a sparse file (%v)", args, err)
			}

			_, err := Build(t.Context(), io.Discard, bytes.NewReader(input), WithFormat(toc.FormatZstdChunked))
			if !errors.Is(err, ErrUnsupportedEntry) || !strings.Contains(err.Error(), `"s.bin": sparse file`) {
				t.Errorf("zstd:chunked: error %v, want ErrUnsupportedEntry naming s.bin as a sparse file", err)
			}

			for _, opts := range [][]Option{nil, {WithPrioritizedFiles([]string{"tail.bin"})}} {
				blob, res := build(t, input, opts...)
				out := gunzip(t, blob)
				if res.DiffID != digest.FromBytes(out) {
					t.Errorf("DiffID %s, the gunzipped blob has %s", res.DiffID, digest.FromBytes(out))
				}
				sameFiles(t, "GNU tar", withoutEStargzEntries(extractWithGNUTar(t, out)), want)
				sameFiles(t, "Python tarfile", withoutEStargzEntries(extractWithPython(t, out)), want)
				sameFiles(t, "lazy reader", lazyFiles(t, openLazily(t, blob, res), want), want)
			}
		})
	}
}

// withoutEStargzEntries drops the files eStargz adds: the landmark and
// the TOC.
func withoutEStargzEntries(files map[string][]byte) map[string][]byte {
	for _, name := range []string{toc.PrefetchLandmark, toc.NoPrefetchLandmark, estargz.TOCTarName} {
		delete(files, name)
	}
	return files
}

// kindsTree writes a tree of every kind of entry GNU tar archives, with
// names and link targets too long for a plain header, and returns the
// entries of d, but for d/long, which a ustar header can hold (all but
// d/fifo fit a v7 header).
func kindsTree(t *testing.T) (dir string, short []string) {
	t.Helper()
	dir = t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	data := make([]byte, 100<<10)
	for i := range data[:60<<10] {
		data[i] = byte(i * 7 / 3)
	}
	deep := "d/long/" + strings.Repeat("x", 90) + "/" + strings.Repeat("y", 90)
	must(os.MkdirAll(filepath.Join(dir, deep), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "d/e"), 0o700))
	for name, content := range map[string][]byte{
		"d/empty": nil, "d/one": {'1'}, "d/block": bytes.Repeat([]byte{'b'}, 512), "d/data": data,
		"d/e/f": []byte("f\n"),
		"d/long/" + strings.Repeat("long-name-", 12):   []byte("long\n"),
		"d/long/" + strings.Repeat("x", 90) + "/split": []byte("split\n"),
		deep + "/" + strings.Repeat("z", 90):           []byte("deep\n"),
		"d/long/héllo wörld":                           []byte("non-ASCII\n"),
	} {
		must(os.WriteFile(filepath.Join(dir, name), content, 0o644))
	}
	must(os.Symlink("one", filepath.Join(dir, "d/link")))
	must(os.Symlink(strings.Repeat("../d/", 30)+"one", filepath.Join(dir, "d/long/link")))
	must(os.Link(filepath.Join(dir, "d/one"), filepath.Join(dir, "d/hard")))
	must(syscall.Mkfifo(filepath.Join(dir, "d/fifo"), 0o600))
	return dir, []string{"d/empty", "d/one", "d/block", "d/data", "d/link", "d/hard", "d/fifo", "d/e"}
}

// TestBuildZstdChunkedKeepsGNUTars builds tars that GNU tar writes in
// each of its formats and with options that exercise unusual headers (long
// names and link targets, numbers in base-256, PAX records, xattrs,
// record padding after the end of the archive), and tars with garbage
// where readers ignore it. zstd:chunked must either refuse an input with
// ErrUnsupportedEntry or keep it byte for byte: the blob decompresses to
// it, our reader rebuilds it from the tar-split, and every file reads
// back through the lazy reader as archive/tar reads it. eStargz must hold
// the same files as the input when GNU tar extracts both.
func TestBuildZstdChunkedKeepsGNUTars(t *testing.T) {
	src, short := kindsTree(t)
	all := []string{"d"}
	xattrs := syscall.Setxattr(filepath.Join(src, "d/data"), "user.lazylayer", []byte("value"), 0) == nil
	type input struct {
		args    []string // GNU tar options and names
		refused bool     // zstd:chunked must refuse it
	}
	inputs := map[string]input{
		"v7":            {args: append([]string{"--format=v7", "--exclude=d/fifo"}, short...)},
		"ustar":         {args: append([]string{"--format=ustar", "d/long/" + strings.Repeat("x", 90) + "/split"}, short...)},
		"oldgnu":        {args: append([]string{"--format=oldgnu"}, all...)},
		"gnu":           {args: append([]string{"--format=gnu"}, all...)},
		"pax":           {args: append([]string{"--format=pax"}, all...)},
		"gnu base-256":  {args: append([]string{"--format=gnu", "--owner=big:3000000", "--group=big:4000000", "--mtime=@10000000000"}, all...)},
		"gnu negative":  {args: append([]string{"--format=gnu", "--mtime=@-100000"}, all...)},
		"pax big":       {args: append([]string{"--format=pax", "--owner=big:3000000", "--group=big:4000000", "--mtime=@10000000000"}, all...)},
		"pax records":   {args: append([]string{"--format=pax", "--pax-option=comment:=hello"}, all...)},
		"record 1":      {args: append([]string{"--format=gnu", "--blocking-factor=1"}, all...)},
		"record 3":      {args: append([]string{"--format=gnu", "--blocking-factor=3"}, all...)},
		"global header": {args: append([]string{"--format=pax", "--pax-option=comment=hello"}, all...), refused: true},
		"volume label":  {args: append([]string{"--format=gnu", "--label=VOL"}, all...), refused: true},
		"incremental":   {args: append([]string{"--format=gnu", "--listed-incremental=" + filepath.Join(t.TempDir(), "snar")}, all...), refused: true},
	}
	if xattrs {
		inputs["pax xattrs"] = input{args: append([]string{"--format=pax", "--xattrs"}, all...)}
	} else {
		t.Log("the temporary directory has no user xattrs: not testing tar --xattrs")
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			archive := createTar(t, src, in.args...)
			checkZstdChunkedKeeps(t, archive, in.refused)
			if in.refused {
				return
			}
			blob, _ := build(t, archive)
			sameFiles(t, "eStargz through GNU tar", withoutEStargzEntries(extractWithGNUTar(t, gunzip(t, blob))), extractWithGNUTar(t, archive))
		})
	}

	// Bytes that tar readers skip: garbage in padding and after the end
	// of the archive, which readers of a tar-split refuse (GNU tar -i
	// reads past the end), and archives that end early.
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeReg, Name: "a", Size: 3, Mode: 0o644},
		{Typeflag: tar.TypeReg, Name: "big-ids", Size: 1, Uid: 1 << 30, Gid: 1 << 31, Mode: 0o600, Format: tar.FormatGNU},
	} {
		tw.WriteHeader(h)
		tw.Write(bytes.Repeat([]byte{'x'}, int(h.Size)))
	}
	tw.Close()
	plain := b.Bytes()
	garbagePadding := bytes.Clone(plain)
	for i := 512 + 3; i < 1024; i++ {
		garbagePadding[i] = 0xaa
	}
	for name, tc := range map[string]struct {
		archive []byte
		refused bool
	}{
		"garbage in padding":    {garbagePadding, true},
		"garbage after the end": {append(bytes.Clone(plain), bytes.Repeat([]byte{0x55}, 1000)...), true},
		"zeros after the end":   {append(bytes.Clone(plain), make([]byte, 1000)...), false},
		"one end block":         {plain[:len(plain)-512], false},
		"no end blocks":         {plain[:len(plain)-1024], false},
	} {
		t.Run(name, func(t *testing.T) { checkZstdChunkedKeeps(t, tc.archive, tc.refused) })
	}
}

// checkZstdChunkedKeeps builds input as zstd:chunked and checks that the
// blob keeps it byte for byte in every view, or, if refused, that Build
// refused it with ErrUnsupportedEntry.
func checkZstdChunkedKeeps(t *testing.T, input []byte, refused bool) {
	t.Helper()
	var blob bytes.Buffer
	res, err := Build(t.Context(), &blob, bytes.NewReader(input), WithFormat(toc.FormatZstdChunked), WithChunkSize(16<<10))
	if refused {
		if !errors.Is(err, ErrUnsupportedEntry) {
			t.Errorf("error %v, want ErrUnsupportedEntry", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if out := unzstd(t, blob.Bytes()); !bytes.Equal(out, input) {
		t.Fatalf("blob decompresses to %d bytes that differ from the %d-byte input", len(out), len(input))
	}
	if want := digest.FromBytes(input); res.DiffID != want {
		t.Errorf("DiffID %s, want the input's %s", res.DiffID, want)
	}
	l := openLazily(t, blob.Bytes(), res)
	var rebuilt bytes.Buffer
	if _, err := l.WriteTar(t.Context(), &rebuilt); err != nil || !bytes.Equal(rebuilt.Bytes(), input) {
		t.Errorf("WriteTar: %d bytes (%v), want the %d-byte input", rebuilt.Len(), err, len(input))
	}
	files := tarFiles(t, input)
	sameFiles(t, "lazy reader", lazyFiles(t, l, files), files)
}
