package writer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/toc/estargz"
	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func kindsTar(t testing.TB) []byte {
	t.Helper()
	b, err := tartest.WriteTar(tartest.Kinds())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// smallKinds is tartest.Kinds with each file above 64 KiB cut to a
// sixteenth of its size plus 7 bytes, so sizes stay unaligned (big.bin:
// 9 chunks of 64 KiB and 7 bytes). Tests whose point is the layout or
// determinism rather than size use it with small chunk sizes: the race
// detector makes compressing the full 17 MiB slow.
func smallKinds() []tartest.Entry {
	es := tartest.Kinds()
	for i := range es {
		if c := es[i].Content; len(c) > 64<<10 {
			es[i].Content = c[:len(c)/16+7]
			es[i].Header.Size = int64(len(es[i].Content))
		}
	}
	return es
}

func smallKindsTar(t testing.TB) []byte {
	t.Helper()
	b, err := tartest.WriteTar(smallKinds())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func build(t testing.TB, input []byte, opts ...Option) ([]byte, *Result) {
	t.Helper()
	var blob bytes.Buffer
	res, err := Build(context.Background(), &blob, bytes.NewReader(input), opts...)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return blob.Bytes(), res
}

func gunzip(t testing.TB, blob []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip blob: %v", err)
	}
	return out
}

// decode reads the blob's TOC back through the toc package, as a reader
// would: footer, TOC member, JSON.
func decode(t testing.TB, blob []byte) *toc.TOC {
	t.Helper()
	f, err := estargz.ParseFooter(blob[len(blob)-toc.MaxFooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	got, err := estargz.Decode(blob[f.TOCOffset:len(blob)-f.Size], f.TOCOffset)
	if err != nil {
		t.Fatalf("decoding TOC: %v", err)
	}
	return got
}

func names(t *toc.TOC) []string {
	var ns []string
	for _, e := range t.Entries {
		ns = append(ns, e.Name)
	}
	return ns
}

// TestBuildKeepsEveryEntryVerbatim checks the streaming layout on every
// kind of entry: the gunzipped blob is the landmark, then the input's bytes
// exactly (headers included), then the TOC entry.
func TestBuildKeepsEveryEntryVerbatim(t *testing.T) {
	input := kindsTar(t)
	blob, res := build(t, input)
	out := gunzip(t, blob)

	if d := digest.FromBytes(out); d != res.DiffID || int64(len(out)) != res.UncompressedSize {
		t.Errorf("gunzipped blob is %d bytes %s; Result says %d bytes %s", len(out), d, res.UncompressedSize, res.DiffID)
	}
	if res.Size != int64(len(blob)) || res.Digest != digest.FromBytes(blob) {
		t.Errorf("Result says blob %d bytes %s, got %d bytes %s", res.Size, res.Digest, len(blob), digest.FromBytes(blob))
	}
	const landmarkLen = 1024 // header block and one padded content block
	body := input[:len(input)-1024]
	if len(out) < landmarkLen+len(body) || !bytes.Equal(out[landmarkLen:landmarkLen+len(body)], body) {
		t.Fatal("the gunzipped blob does not hold the input's entries byte for byte after the landmark")
	}
	tr := tar.NewReader(bytes.NewReader(out))
	first, _ := tr.Next()
	if first.Name != toc.NoPrefetchLandmark {
		t.Errorf("first entry %q, want %q", first.Name, toc.NoPrefetchLandmark)
	}

	want := tartest.Kinds()
	got := decode(t, blob)
	if got.Digest != res.TOCDigest || !got.NoPrefetch {
		t.Errorf("decoded TOC digest %s NoPrefetch %v; want %s true", got.Digest, got.NoPrefetch, res.TOCDigest)
	}
	if len(got.Entries) != len(want)+1 {
		t.Fatalf("TOC has %d entries, want %d", len(got.Entries), len(want)+1)
	}
	for i, w := range want {
		e := got.Entries[i+1]
		if e.Name != cleanName(w.Header.Name) {
			t.Errorf("entry %d: %q, want %q", i, e.Name, cleanName(w.Header.Name))
		}
		if e.Type == toc.TypeReg && e.Digest != digest.FromBytes(w.Content) {
			t.Errorf("%q: digest %s, want %s", e.Name, e.Digest, digest.FromBytes(w.Content))
		}
	}
	if !slices.EqualFunc(got.Entries, res.TOC().Entries, sameChunks) {
		t.Error("the TOC in the blob and Result.TOC disagree on chunks")
	}
}

func sameChunks(a, b *toc.Entry) bool {
	return a.Name == b.Name && slices.Equal(a.Chunks, b.Chunks)
}

func TestBuildIsDeterministic(t *testing.T) {
	input := smallKindsTar(t)
	for _, layout := range [][]Option{
		{WithChunkSize(64 << 10)},
		{WithPrioritizedFiles([]string{"usr/lib/big.bin", "etc/hostname"}), WithChunkSize(100 << 10)},
		{WithMinChunkSize(16 << 10), WithChunkSize(64 << 10)},
	} {
		want, _ := build(t, input, append(layout, WithConcurrency(1))...)
		for _, n := range []int{2, 8} {
			got, _ := build(t, input, append(layout, WithConcurrency(n))...)
			if !bytes.Equal(got, want) {
				t.Fatalf("concurrency %d wrote different bytes than concurrency 1", n)
			}
		}
	}
}

func TestBuildPrioritizedOrder(t *testing.T) {
	blob, res := build(t, smallKindsTar(t), WithPrioritizedFiles([]string{
		"/usr/bin/tool-hardlink", // its target and parents come first
		"./etc/hostname",
		"usr/bin/tool", // already moved: no-op
	}))
	got := names(decode(t, blob))
	want := []string{".", "usr", "usr/bin", "usr/bin/tool", "usr/bin/tool-hardlink", "etc", "etc/hostname", toc.PrefetchLandmark}
	if !slices.Equal(got[:len(want)], want) {
		t.Fatalf("TOC starts %q, want %q", got[:len(want)], want)
	}
	// The rest keeps the input order and holds each name once.
	var rest []string
	for _, e := range tartest.Kinds() {
		if n := cleanName(e.Header.Name); !slices.Contains(want, n) {
			rest = append(rest, n)
		}
	}
	if !slices.Equal(got[len(want):], rest) {
		t.Errorf("TOC continues %q, want %q", got[len(want):], rest)
	}
	landmark := res.TOC().Entries[len(want)-1]
	if res.TOC().PrefetchEnd == 0 || res.TOC().PrefetchEnd != landmark.Chunks[0].FrameOffset || landmark.Chunks[0].InnerOffset != 0 {
		t.Errorf("PrefetchEnd %d, landmark chunk %+v: the landmark must start the member at PrefetchEnd", res.TOC().PrefetchEnd, landmark.Chunks[0])
	}
	out := gunzip(t, blob)
	if d := digest.FromBytes(out); d != res.DiffID {
		t.Errorf("DiffID %s, gunzipped blob %s", res.DiffID, d)
	}
}

func TestBuildMissingPrioritized(t *testing.T) {
	input := smallKindsTar(t)
	prio := []string{"etc/hostname", "no/such/file", "/nor/this"}
	_, err := Build(context.Background(), io.Discard, bytes.NewReader(input), WithPrioritizedFiles(prio))
	if !errors.Is(err, ErrPrioritizedNotFound) || !strings.Contains(err.Error(), "no/such/file") {
		t.Fatalf("Build with a missing prioritised file: %v, want ErrPrioritizedNotFound naming it", err)
	}
	_, res := build(t, input, WithPrioritizedFiles(prio), WithAllowMissingPrioritized())
	if want := []string{"no/such/file", "/nor/this"}; !slices.Equal(res.MissingPrioritized, want) {
		t.Errorf("MissingPrioritized %q, want %q", res.MissingPrioritized, want)
	}
	if got, want := names(res.TOC())[:4], []string{".", "etc", "etc/hostname", toc.PrefetchLandmark}; !slices.Equal(got, want) {
		t.Errorf("TOC starts %q, want %q", got, want)
	}
}

// TestBuildDuplicateNames checks that moving a file ahead drops its earlier
// occurrences, which would otherwise override it on extraction.
func TestBuildDuplicateNames(t *testing.T) {
	input, err := tartest.WriteTar([]tartest.Entry{
		{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "a", Size: 3}, Content: []byte("old")},
		{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "b", Size: 1}, Content: []byte("b")},
		{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "./a", Size: 3}, Content: []byte("new")},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, res := build(t, input, WithPrioritizedFiles([]string{"a"}))
	if got, want := names(res.TOC()), []string{"a", toc.PrefetchLandmark, "b"}; !slices.Equal(got, want) {
		t.Fatalf("TOC %q, want %q", got, want)
	}
	if res.TOC().Entries[0].Digest != digest.FromString("new") {
		t.Error("the prioritised copy of a is not the last one in the input")
	}
}

func TestBuildCompressedInputs(t *testing.T) {
	input := smallKindsTar(t)
	want, _ := build(t, input)
	var gz, zs bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(input)
	zw.Close()
	enc, _ := zstd.NewWriter(&zs)
	enc.Write(input)
	enc.Close()
	for name, in := range map[string][]byte{"gzip": gz.Bytes(), "zstd": zs.Bytes()} {
		if got, _ := build(t, in); !bytes.Equal(got, want) {
			t.Errorf("%s input: blob differs from the one built from plain tar", name)
		}
	}
}

// TestBuildRebuildsEStargz feeds a blob back in: its TOC and landmark are
// dropped and written anew, so the result equals the first build.
func TestBuildRebuildsEStargz(t *testing.T) {
	first, _ := build(t, smallKindsTar(t), WithChunkSize(64<<10))
	again, _ := build(t, first, WithChunkSize(64<<10))
	if !bytes.Equal(first, again) {
		got, want := names(decode(t, again)), names(decode(t, first))
		t.Fatalf("rebuilding an eStargz blob changed it: TOC %q, want %q", got, want)
	}
}

func TestBuildLayout(t *testing.T) {
	input := smallKindsTar(t)
	t.Run("chunks", func(t *testing.T) {
		const chunk = 64 << 10
		_, res := build(t, input, WithChunkSize(chunk))
		seen := make(map[int64]bool)
		for _, e := range res.TOC().Entries {
			for i, c := range e.Chunks {
				if c.InnerOffset != 0 || seen[c.FrameOffset] || c.FrameEnd <= c.FrameOffset {
					t.Fatalf("%q chunk %d %+v: every chunk must start its own member", e.Name, i, c)
				}
				seen[c.FrameOffset] = true
				if c.Size > chunk || (i < len(e.Chunks)-1 && c.Size != chunk) {
					t.Fatalf("%q chunk %d has size %d, chunk size %d", e.Name, i, c.Size, chunk)
				}
			}
		}
		if e := findEntry(res.TOC(), "usr/lib/big.bin"); len(e.Chunks) != 10 {
			t.Errorf("a file of 9 chunk sizes and 7 bytes has %d chunks, want 10", len(e.Chunks))
		}
	})
	t.Run("min-chunk", func(t *testing.T) {
		_, res := build(t, input, WithMinChunkSize(32<<10))
		shared := 0
		for _, e := range res.TOC().Entries {
			for _, c := range e.Chunks {
				if c.InnerOffset > 0 {
					shared++
				}
			}
		}
		if shared < 30 {
			t.Errorf("%d chunks share a member, want the small files to", shared)
		}
		if e := findEntry(res.TOC(), toc.NoPrefetchLandmark); e.Chunks[0].InnerOffset != 0 {
			t.Error("the landmark shares a member")
		}
	})
}

func findEntry(t *toc.TOC, name string) *toc.Entry {
	for _, e := range t.Entries {
		if e.Name == name {
			return e
		}
	}
	return nil
}

func TestBuildBadInput(t *testing.T) {
	input := smallKindsTar(t)
	garbage := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(r.Uint32())
	}
	for name, in := range map[string][]byte{
		"garbage":          garbage,
		"truncated-header": input[:700],
		"truncated-data":   input[:len(input)/2],
		"bad-gzip":         {0x1f, 0x8b, 0x08, 0, 1, 2, 3},
	} {
		_, err := Build(context.Background(), io.Discard, bytes.NewReader(in))
		if err == nil || !strings.HasPrefix(err.Error(), "writer: ") {
			t.Errorf("%s: Build error %v, want one that says where it failed", name, err)
		}
	}
}

func TestBuildUnsupportedEntry(t *testing.T) {
	input, err := tartest.WriteTar([]tartest.Entry{{Header: &tar.Header{Typeflag: 'V', Name: "volume"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(context.Background(), io.Discard, bytes.NewReader(input)); !errors.Is(err, ErrUnsupportedEntry) {
		t.Errorf("GNU volume header: %v, want ErrUnsupportedEntry", err)
	}
}

func TestBuildInvalidOptions(t *testing.T) {
	for name, o := range map[string]Option{
		"chunk":       WithChunkSize(0),
		"min-chunk":   WithMinChunkSize(-1),
		"content-min": WithContentChunkMin(-1),
		"level":       WithCompressionLevel(12),
		"concurrency": WithConcurrency(0),
	} {
		if _, err := Build(context.Background(), io.Discard, bytes.NewReader(nil), o); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: %v, want ErrInvalidOption", name, err)
		}
	}
}

func TestBuildCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	input := smallKindsTar(t)
	for _, opts := range [][]Option{nil, {WithPrioritizedFiles([]string{"etc"})}} {
		if _, err := Build(ctx, io.Discard, bytes.NewReader(input), opts...); !errors.Is(err, context.Canceled) {
			t.Errorf("canceled context: %v, want context.Canceled", err)
		}
	}
}

func TestBuildSpoolsInTempDir(t *testing.T) {
	dir := t.TempDir()
	build(t, smallKindsTar(t), WithPrioritizedFiles([]string{"etc/hostname"}), WithTempDir(dir))
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("spool files left behind: %v", left)
	}
	_, err := Build(context.Background(), io.Discard, io.MultiReader(bytes.NewReader(smallKindsTar(t))),
		WithPrioritizedFiles([]string{"etc/hostname"}), WithTempDir(dir+"/missing"))
	if err == nil {
		t.Error("Build spooled to a missing directory")
	}
}

// TestBuildReadsSeekableInputInPlace checks that an uncompressed input
// read at random from its start is reordered in place, into the same
// blob, and that any other input is spooled.
func TestBuildReadsSeekableInputInPlace(t *testing.T) {
	input := smallKindsTar(t)
	opts := []Option{WithPrioritizedFiles([]string{"etc/hostname"}), WithChunkSize(64 << 10)}
	want, _ := build(t, input, append(opts, WithTempDir(t.TempDir()))...)
	missing := WithTempDir(t.TempDir() + "/missing")
	got, _ := build(t, input, append(opts, missing)...) // a bytes.Reader: no spool
	if !bytes.Equal(got, want) {
		t.Error("the blob built in place differs from the spooled one")
	}
	moved := bytes.NewReader(append([]byte("x"), input...))
	moved.Seek(1, io.SeekStart)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(input)
	zw.Close()
	for name, r := range map[string]io.Reader{
		"not at its start": moved,
		"compressed":       bytes.NewReader(gz.Bytes()),
		"not seekable":     io.MultiReader(bytes.NewReader(input)),
	} {
		if _, err := Build(context.Background(), io.Discard, r, append(opts, missing)...); err == nil {
			t.Errorf("%s: built without spooling", name)
		}
	}
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after -= len(p); w.after < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestBuildWriteError(t *testing.T) {
	_, err := Build(context.Background(), &failingWriter{after: 256 << 10}, bytes.NewReader(smallKindsTar(t)))
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Build to a failing writer: %v, want the write error", err)
	}
}

// TestBuildSparseFiles checks that GNU and PAX sparse files, which
// archive/tar reads expanded, are written as plain regular files in
// eStargz, and refused by zstd:chunked, which must keep the tar's bytes
// (sparse_test.go extracts them with real tar implementations).
func TestBuildSparseFiles(t *testing.T) {
	want := make([]byte, 1<<20)
	copy(want[300000:], "hello")
	copy(want[900000:], "world")
	for _, name := range []string{"sparse-gnu.tar", "sparse-pax.tar"} {
		t.Run(name, func(t *testing.T) {
			input, err := os.ReadFile("testdata/" + name)
			if err != nil {
				t.Fatal(err)
			}
			blob, res := build(t, input)
			if e := findEntry(res.TOC(), "sparse"); e == nil || e.Size != int64(len(want)) || e.Digest != digest.FromBytes(want) {
				t.Fatalf("TOC entry %+v, want the expanded file", e)
			}
			tr := tar.NewReader(bytes.NewReader(gunzip(t, blob)))
			got := make(map[string][]byte)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if h.Typeflag != tar.TypeReg {
					t.Errorf("%q: type %q, want a regular file", h.Name, h.Typeflag)
				}
				got[h.Name], _ = io.ReadAll(tr)
			}
			if !bytes.Equal(got["sparse"], want) || string(got["plain"]) != "plain\n" {
				t.Error("the gunzipped blob does not hold the expanded sparse file and the plain one")
			}

			_, err = Build(t.Context(), io.Discard, bytes.NewReader(input), WithFormat(toc.FormatZstdChunked))
			if !errors.Is(err, ErrUnsupportedEntry) || !strings.Contains(err.Error(), `"sparse": sparse file`) {
				t.Errorf("zstd:chunked: error %v, want ErrUnsupportedEntry naming the sparse file", err)
			}
		})
	}
}

// TestBuildGlobalHeader checks that a PAX global header passes through in
// place, describes no TOC entry, and stays behind moved files.
func TestBuildGlobalHeader(t *testing.T) {
	input, err := tartest.WriteTar([]tartest.Entry{
		{Header: &tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "global", PAXRecords: map[string]string{"comment": "built by test"}}},
		{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "a", Size: 1}, Content: []byte("a")},
		{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "b", Size: 1}, Content: []byte("b")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opts      []Option
		wantTar   []byte // typeflags of the gunzipped stream
		wantNames []string
	}{
		{nil, []byte{tar.TypeReg, tar.TypeXGlobalHeader, tar.TypeReg, tar.TypeReg, tar.TypeReg},
			[]string{toc.NoPrefetchLandmark, "a", "b"}},
		{[]Option{WithPrioritizedFiles([]string{"b"})}, []byte{tar.TypeReg, tar.TypeReg, tar.TypeXGlobalHeader, tar.TypeReg, tar.TypeReg},
			[]string{"b", toc.PrefetchLandmark, "a"}},
	} {
		blob, res := build(t, input, tc.opts...)
		if got := names(res.TOC()); !slices.Equal(got, tc.wantNames) {
			t.Errorf("TOC %q, want %q", got, tc.wantNames)
		}
		var types []byte
		tr := tar.NewReader(bytes.NewReader(gunzip(t, blob)))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeXGlobalHeader && h.PAXRecords["comment"] != "built by test" {
				t.Errorf("global header records %v", h.PAXRecords)
			}
			types = append(types, h.Typeflag)
		}
		if !bytes.Equal(types, tc.wantTar) {
			t.Errorf("gunzipped stream has types %q, want %q", types, tc.wantTar)
		}
	}
}

// TestBuildAnnotatesIndexPosition checks that both formats publish where
// index and footer lie: from the index's first byte (the eStargz TOC
// member, the zstd:chunked TOC frame) to the blob's end.
func TestBuildAnnotatesIndexPosition(t *testing.T) {
	input := smallKindsTar(t)
	for _, format := range []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked} {
		blob, res := build(t, input, WithFormat(format), WithChunkSize(64<<10))
		parseFooter := estargz.ParseFooter
		if format == toc.FormatZstdChunked {
			parseFooter = zstdchunked.ParseFooter
		}
		footer, err := parseFooter(blob)
		if err != nil {
			t.Fatal(err)
		}
		start := footer.TOCOffset
		if format == toc.FormatZstdChunked {
			start -= zstdchunked.SkippableFrameHeaderSize
		}
		off, n, err := toc.ParseIndexPositionAnnotations(res.Annotations)
		if err != nil || off != start || off+n != int64(len(blob)) {
			t.Errorf("%v: index position %d:%d, %v; want %d:%d", format, off, n, err, start, int64(len(blob))-start)
		}
	}
}

// TestBuildMediaType checks that a Result names the OCI layer type its
// blob is to a runtime that does not read it lazily.
func TestBuildMediaType(t *testing.T) {
	input := smallKindsTar(t)
	for format, want := range map[toc.Format]string{
		toc.FormatEStargz:     ocispec.MediaTypeImageLayerGzip,
		toc.FormatZstdChunked: ocispec.MediaTypeImageLayerZstd,
	} {
		_, res := build(t, input, WithFormat(format), WithChunkSize(64<<10))
		if res.MediaType != want {
			t.Errorf("%v: MediaType %q, want %q", format, res.MediaType, want)
		}
	}
}
