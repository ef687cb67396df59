package reader

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"testing"
	"testing/synctest"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/flate"
	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/toc/soci"
	"github.com/opencontainers/go-digest"
)

// kindsLayerTar returns the tar of the generated all-kinds tree.
func kindsLayerTar(t testing.TB) []byte {
	t.Helper()
	data, err := tartest.WriteTar(tartest.SmallKinds())
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// gzipLayer compresses data as one gzip member per cut, with header h.
func gzipLayer(t testing.TB, level int, h gzip.Header, data []byte, cuts ...int) []byte {
	t.Helper()
	var buf bytes.Buffer
	prev := 0
	for _, c := range append(cuts, len(data)) {
		w, err := gzip.NewWriterLevel(&buf, level)
		if err != nil {
			t.Fatal(err)
		}
		w.Header = h
		w.Write(data[prev:c])
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		prev = c
	}
	return buf.Bytes()
}

// makeZtoc indexes layer with toc/soci.
func makeZtoc(t testing.TB, layer []byte, c soci.Compression, spanSize int64) (*soci.Ztoc, []byte) {
	t.Helper()
	z, err := soci.Index(context.Background(), bytes.NewReader(layer), c, soci.WithSpanSize(spanSize))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := soci.Encode(z)
	if err != nil {
		t.Fatal(err)
	}
	return z, enc
}

func openZtocLayer(t testing.TB, layer, ztoc []byte, opts ...Option) (*Layer, error) {
	t.Helper()
	f := fetcher.FromReaderAt(bytes.NewReader(layer), int64(len(layer)))
	l, err := Open(context.Background(), f, append([]Option{WithZtoc(ztoc)}, opts...)...)
	if err == nil {
		t.Cleanup(func() { l.Close() })
	}
	return l, err
}

// ztocCase is a layer, its compression and the tar it holds.
type ztocCase struct {
	name  string
	layer []byte
	c     soci.Compression
}

func ztocCases(t testing.TB, data []byte) []ztocCase {
	headers := gzip.Header{Name: "layer.tar", Comment: "a comment", Extra: []byte("extra field")}
	return []ztocCase{
		{"gzip", gzipLayer(t, 6, gzip.Header{}, data), soci.Gzip},
		{"gzip-1", gzipLayer(t, 1, gzip.Header{}, data), soci.Gzip},
		{"multi-member", gzipLayer(t, 9, gzip.Header{}, data, len(data)/5, len(data)/2, len(data)/2+1000), soci.Gzip},
		{"fname-fcomment-fextra", gzipLayer(t, 6, headers, data, len(data)/3), soci.Gzip},
		{"uncompressed", data, soci.Uncompressed},
	}
}

func TestZtocRoundTrip(t *testing.T) {
	data := kindsLayerTar(t)
	want := tartest.FileContents(t, data)
	for _, c := range ztocCases(t, data) {
		for _, spanSize := range []int64{20 << 10, 100 << 10} {
			_, enc := makeZtoc(t, c.layer, c.c, spanSize)
			l, err := openZtocLayer(t, c.layer, enc)
			if err != nil {
				t.Fatalf("%s, spans of %d: %v", c.name, spanSize, err)
			}
			if l.TOC().Format != toc.FormatSOCI {
				t.Fatalf("%s: format %v", c.name, l.TOC().Format)
			}
			checkAllFiles(t, l, want)
			// Parts of files, across span boundaries, with ReadAt.
			for name, content := range want {
				if len(content) < 3 {
					continue
				}
				f, err := l.Open(name)
				if err != nil {
					t.Fatal(err)
				}
				off := len(content) / 3
				got := make([]byte, len(content)/2)
				if n, err := f.(io.ReaderAt).ReadAt(got, int64(off)); err != nil || !bytes.Equal(got[:n], content[off:off+n]) {
					t.Fatalf("%s: ReadAt %q: %v", c.name, name, err)
				}
				f.Close()
			}
		}
	}
}

func TestZtocWriteTarAndFetchAll(t *testing.T) {
	data := kindsLayerTar(t)
	for _, c := range ztocCases(t, data) {
		_, enc := makeZtoc(t, c.layer, c.c, 64<<10)
		cache := newMapCache()
		l, err := openZtocLayer(t, c.layer, enc, WithCache(cache), WithLayerDigest(digest.FromBytes(c.layer)))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		d, err := l.WriteTar(context.Background(), &out)
		wantTar := data
		if c.c == soci.Gzip {
			zr, _ := gzip.NewReader(bytes.NewReader(c.layer))
			wantTar, _ = io.ReadAll(zr)
		}
		if err != nil || !bytes.Equal(out.Bytes(), wantTar) || d != digest.FromBytes(wantTar) {
			t.Fatalf("%s: WriteTar: %v, %d bytes of %d", c.name, err, out.Len(), len(wantTar))
		}
		if err := l.FetchAll(context.Background()); err != nil {
			t.Fatalf("%s: FetchAll: %v", c.name, err)
		}
		// The cache holds every span by its digest: a layer whose blob
		// is gone reads every file from it.
		keys := l.CacheKeys()
		for _, k := range keys {
			if _, ok := cache.Get(k); !ok {
				t.Fatalf("%s: span %s not cached", c.name, k)
			}
		}
		gone := &failingFetcher{size: int64(len(c.layer))}
		l2, err := Open(context.Background(), gone, WithZtoc(enc), WithCache(cache))
		if err != nil {
			t.Fatal(err)
		}
		if c.c == soci.Gzip {
			// Span 0's gzip header is not in the cache: the first read
			// of span 0 fetches it once.
			l2.spans.header.Store(l.spans.header.Load())
		}
		checkAllFiles(t, l2, tartest.FileContents(t, data))
		l2.Close()
	}
}

func TestZtocFetchAllWaitsForItsGate(t *testing.T) {
	data := kindsLayerTar(t)
	for _, c := range ztocCases(t, data) {
		_, enc := makeZtoc(t, c.layer, c.c, 64<<10)
		l, err := openZtocLayer(t, c.layer, enc, WithCache(newMapCache()))
		if err != nil {
			t.Fatal(err)
		}
		stop := errors.New("no more")
		var asked int64
		err = l.FetchAll(context.Background(), WithFetchGate(func(_ context.Context, size int64) error {
			asked += size
			return stop
		}))
		if !errors.Is(err, stop) || asked == 0 {
			t.Errorf("%s: FetchAll with a failing gate: %v after asking it for %d bytes, want the gate's error", c.name, err, asked)
		}
	}
}

// failingFetcher serves a blob's size and fails every fetch.
type failingFetcher struct{ size int64 }

func (f *failingFetcher) Size(context.Context) (int64, error) { return f.size, nil }
func (f *failingFetcher) Fetch(context.Context, []fetcher.Range, func(fetcher.Range, []byte) error) error {
	return errors.New("registry gone")
}

func TestZtocLayerDigest(t *testing.T) {
	data := kindsLayerTar(t)
	layer := gzipLayer(t, 6, gzip.Header{}, data)
	_, enc := makeZtoc(t, layer, soci.Gzip, 64<<10)
	good, bad := digest.FromBytes(layer), digest.FromBytes(data)
	if _, err := openZtocLayer(t, layer, enc, WithLayerDigest(good), WithRequireLayerDigest()); err != nil {
		t.Fatalf("required, good digest: %v", err)
	}
	if _, err := openZtocLayer(t, layer, enc, WithLayerDigest(bad), WithRequireLayerDigest()); !errors.Is(err, ErrLayerDigest) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("required, bad digest: %v", err)
	}
	if _, err := openZtocLayer(t, layer, enc, WithRequireLayerDigest()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("required without a digest: %v", err)
	}
	l, err := openZtocLayer(t, layer, enc, WithLayerDigest(bad), WithCache(newMapCache()))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FetchAll(context.Background()); !errors.Is(err, ErrLayerDigest) {
		t.Fatalf("FetchAll, bad digest: %v", err)
	}
	if _, err := l.WriteTar(context.Background(), io.Discard); !errors.Is(err, ErrLayerDigest) {
		t.Fatalf("WriteTar, bad digest: %v", err)
	}
	if _, err := openZtocLayer(t, layer, enc, WithTOCDigest(digest.FromBytes(layer))); !errors.Is(err, ErrTOCDigest) {
		t.Fatalf("zTOC pinned to another digest: %v", err)
	}
	if _, err := openZtocLayer(t, layer, enc, WithTOCDigest(digest.FromBytes(enc))); err != nil {
		t.Fatalf("zTOC pinned: %v", err)
	}
}

// readEvery reads every file of want through l and fails the test if a
// read returns other bytes. It returns the errors of the reads that
// failed, by name.
func readEvery(t *testing.T, l *Layer, want map[string][]byte) map[string]error {
	t.Helper()
	errs := make(map[string]error)
	for _, name := range sortedNames(want) {
		got, err := l.ReadFile(name)
		if err != nil {
			errs[name] = err
			continue
		}
		if !bytes.Equal(got, want[name]) {
			t.Fatalf("ReadFile(%q) returned wrong bytes", name)
		}
	}
	return errs
}

// forgeZtoc re-encodes z after change changes its checkpoints.
func forgeZtoc(t *testing.T, z *soci.Ztoc, change func(cp *soci.Checkpoints)) []byte {
	t.Helper()
	cp, err := soci.DecodeCheckpoints(z.Checkpoints)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cp.Points {
		cp.Points[i].Window = bytes.Clone(cp.Points[i].Window)
	}
	change(cp)
	forged := *z
	forged.Checkpoints = cp.Encode()
	enc, err := soci.Encode(&forged)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// windowUse returns a byte of checkpoint p's window that decoding the n
// bytes of the span after it copies, or -1.
func windowUse(layer []byte, p soci.Checkpoint, n int) int {
	decode := func(window func(k int) byte) []byte {
		w := make([]byte, len(p.Window))
		for k := range w {
			w[k] = window(k)
		}
		zr := flate.NewReader(nil)
		zr.Resume(bytes.NewReader(layer[p.CompressedStart():]), p.Bits, w)
		out := make([]byte, n)
		io.ReadFull(zr, out)
		return out
	}
	honest := decode(func(k int) byte { return p.Window[k] })
	inverse := decode(func(k int) byte { return ^p.Window[k] })
	for q := range honest {
		if honest[q] != inverse[q] {
			// Output byte q copies a window byte: which one, the
			// window's offsets say.
			lo, hi := decode(func(k int) byte { return byte(k) }), decode(func(k int) byte { return byte(k >> 8) })
			return int(lo[q]) | int(hi[q])<<8
		}
	}
	return -1
}

func TestZtocForgedWindow(t *testing.T) {
	data := kindsLayerTar(t)
	want := tartest.FileContents(t, data)
	layer := gzipLayer(t, 9, gzip.Header{}, data)
	z, _ := makeZtoc(t, layer, soci.Gzip, 48<<10)
	cp, _ := soci.DecodeCheckpoints(z.Checkpoints)
	forgedOne := 0
	for i := 1; i < len(cp.Points); i++ {
		n := int(z.UncompressedArchiveSize - cp.Points[i].Out)
		if i+1 < len(cp.Points) {
			n = int(cp.Points[i+1].Out - cp.Points[i].Out)
		}
		k := windowUse(layer, cp.Points[i], n)
		if k < 0 {
			continue
		}
		// One byte of a window that decoding the span uses: the reads
		// that need it fail, every other read returns the right bytes.
		enc := forgeZtoc(t, z, func(cp *soci.Checkpoints) { cp.Points[i].Window[k] ^= 0x55 })
		l, err := openZtocLayer(t, layer, enc)
		if err != nil {
			t.Fatal(err)
		}
		errs := readEvery(t, l, want)
		if len(errs) == 0 {
			t.Fatalf("checkpoint %d: a forged window byte %d fails no read", i, k)
		}
		for name, err := range errs {
			if !errors.Is(err, ErrWindow) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("checkpoint %d: %q: %v, want ErrWindow", i, name, err)
			}
		}
		forgedOne++
		if forgedOne == 3 {
			break
		}
	}
	if forgedOne == 0 {
		t.Fatal("no window is used")
	}
	// Every window forged: reads of bytes that derive from no window
	// still succeed, the others fail with ErrWindow.
	enc := forgeZtoc(t, z, func(cp *soci.Checkpoints) {
		for i := 1; i < len(cp.Points); i++ {
			for k := range cp.Points[i].Window {
				cp.Points[i].Window[k] ^= 0xff
			}
		}
	})
	l, err := openZtocLayer(t, layer, enc)
	if err != nil {
		t.Fatal(err)
	}
	errs := readEvery(t, l, want)
	if len(errs) == 0 || len(errs) == len(want) {
		t.Fatalf("all windows forged: %d of %d reads fail", len(errs), len(want))
	}
	for name, err := range errs {
		if !errors.Is(err, ErrWindow) {
			t.Fatalf("%q: %v, want ErrWindow", name, err)
		}
	}
	// The whole layer's check finds them all.
	l, _ = openZtocLayer(t, layer, enc, WithCache(newMapCache()))
	if err := l.FetchAll(context.Background()); !errors.Is(err, ErrWindow) {
		t.Fatalf("FetchAll: %v, want ErrWindow", err)
	}
}

func TestZtocForgedPosition(t *testing.T) {
	data := kindsLayerTar(t)
	want := tartest.FileContents(t, data)
	layer := gzipLayer(t, 6, gzip.Header{}, data)
	z, _ := makeZtoc(t, layer, soci.Gzip, 48<<10)
	cp, _ := soci.DecodeCheckpoints(z.Checkpoints)
	// Checkpoint 0 after a header longer than the layer's.
	enc := forgeZtoc(t, z, func(cp *soci.Checkpoints) { cp.Points[0].In += 3 })
	l, err := openZtocLayer(t, layer, enc)
	if err == nil {
		errs := readEvery(t, l, want)
		if len(errs) == 0 {
			t.Fatal("checkpoint 0 off the header's end: every read succeeds")
		}
	}
	// A checkpoint a byte late: the span before does not end there.
	i := len(cp.Points) / 2
	z2 := *z
	enc = forgeZtoc(t, &z2, func(cp *soci.Checkpoints) { cp.Points[i].Bits = (cp.Points[i].Bits + 1) % 8 })
	if l, err = openZtocLayer(t, layer, enc, WithCache(newMapCache())); err != nil {
		t.Fatal(err)
	}
	if errs := readEvery(t, l, want); len(errs) == 0 {
		t.Fatal("checkpoint a bit off: every read succeeds")
	}
	if err := l.FetchAll(context.Background()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("FetchAll: %v", err)
	}
}

func TestZtocSpanDigest(t *testing.T) {
	data := kindsLayerTar(t)
	want := tartest.FileContents(t, data)
	for _, c := range ztocCases(t, data) {
		z, enc := makeZtoc(t, c.layer, c.c, 64<<10)
		bad := bytes.Clone(c.layer)
		bad[len(bad)/2] ^= 1
		l, err := openZtocLayer(t, bad, enc)
		if err != nil {
			t.Fatal(err)
		}
		errs := readEvery(t, l, want)
		if len(errs) == 0 {
			t.Fatalf("%s: a flipped bit fails no read", c.name)
		}
		for name, err := range errs {
			if !errors.Is(err, ErrChunkDigest) && !errors.Is(err, ErrWindow) {
				t.Fatalf("%s: %q: %v, want ErrChunkDigest", c.name, name, err)
			}
		}
		_ = z
	}
}

func TestZtocBad(t *testing.T) {
	data := kindsLayerTar(t)
	layer := gzipLayer(t, 6, gzip.Header{}, data)
	z, _ := makeZtoc(t, layer, soci.Gzip, 64<<10)
	encode := func(change func(z *soci.Ztoc, cp *soci.Checkpoints)) []byte {
		dup := *z
		dup.Files = append([]soci.File(nil), z.Files...)
		dup.SpanDigests = append([]digest.Digest(nil), z.SpanDigests...)
		return forgeZtoc(t, &dup, func(cp *soci.Checkpoints) { change(&dup, cp) })
	}
	cases := map[string]struct {
		ztoc  []byte
		layer []byte
		opts  []Option
		want  []error
	}{
		"offsets do not increase": {encode(func(_ *soci.Ztoc, cp *soci.Checkpoints) { cp.Points[2].In = cp.Points[1].In }), layer, nil, []error{ErrCorrupt, toc.ErrInvalidTOC}},
		"bits over 7":             {encode(func(_ *soci.Ztoc, cp *soci.Checkpoints) { cp.Points[1].Bits = 9 }), layer, nil, []error{ErrCorrupt, toc.ErrInvalidTOC}},
		"max_span_id":             {encode(func(z *soci.Ztoc, _ *soci.Checkpoints) { z.MaxSpanID++ }), layer, nil, []error{ErrCorrupt, toc.ErrInvalidTOC}},
		"claims terabytes":        {encode(func(z *soci.Ztoc, _ *soci.Checkpoints) { z.UncompressedArchiveSize = 5 << 40 }), layer, nil, []error{ErrCorrupt, toc.ErrTOCTooLarge}},
		"blob shorter":            {encode(func(*soci.Ztoc, *soci.Checkpoints) {}), layer[:len(layer)-1], nil, []error{ErrCorrupt}},
		"blob longer":             {encode(func(*soci.Ztoc, *soci.Checkpoints) {}), append(bytes.Clone(layer), 0), nil, []error{ErrCorrupt}},
		"huge span": {encode(func(z *soci.Ztoc, cp *soci.Checkpoints) {
			cp.Points = cp.Points[:1]
			z.SpanDigests, z.MaxSpanID = z.SpanDigests[:1], 0
		}), layer, []Option{WithMaxChunkSize(1 << 20)}, []error{ErrCorrupt}},
		"span of no bytes": {encode(func(_ *soci.Ztoc, cp *soci.Checkpoints) {
			cp.Points[2].Out = cp.Points[1].Out + 50<<20
			cp.Points[3].Out = cp.Points[2].Out + 1
		}), layer, nil, []error{ErrCorrupt}},
		"not a zTOC": {[]byte("not a zTOC"), layer, nil, []error{ErrCorrupt, toc.ErrInvalidTOC}},
	}
	for name, c := range cases {
		_, err := openZtocLayer(t, c.layer, c.ztoc, c.opts...)
		for _, w := range c.want {
			if !errors.Is(err, w) {
				t.Errorf("%s: %v, want %v", name, err, w)
			}
		}
	}
}

// TestZtocFilePastLayer checks a zTOC whose tar is longer than the
// layer's: a read of a file past the layer's end fails.
func TestZtocFilePastLayer(t *testing.T) {
	data := kindsLayerTar(t)
	layer := gzipLayer(t, 6, gzip.Header{}, data)
	z, _ := makeZtoc(t, layer, soci.Gzip, 64<<10)
	z.UncompressedArchiveSize += 4 << 10
	last := &z.Files[len(z.Files)-1]
	*last = soci.File{Name: "past", Type: "reg", Offset: z.UncompressedArchiveSize - 1000, Size: 900, ModTime: last.ModTime}
	enc, err := soci.Encode(z)
	if err != nil {
		t.Fatal(err)
	}
	l, err := openZtocLayer(t, layer, enc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.ReadFile("past"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("file past the layer: %v", err)
	}
	if _, err := fs.Stat(l, "past"); err != nil {
		t.Fatal(err)
	}
}

func TestZtocPrefetch(t *testing.T) {
	data := kindsLayerTar(t)
	want := tartest.FileContents(t, data)
	layer := gzipLayer(t, 6, gzip.Header{}, data)
	_, enc := makeZtoc(t, layer, soci.Gzip, 64<<10)
	cache := newMapCache()
	l, err := openZtocLayer(t, layer, enc, WithCache(cache))
	if err != nil {
		t.Fatal(err)
	}
	var ranges []FileRange
	for _, name := range sortedNames(want) {
		ranges = append(ranges, FileRange{Name: name})
	}
	if err := l.Prefetch(context.Background(), ranges); err != nil {
		t.Fatal(err)
	}
	if len(cache.m) == 0 {
		t.Fatal("prefetch cached nothing")
	}
	checkAllFiles(t, l, want)
}

// TestZtocPrefetchFewWorkers prefetches every span of a zTOC layer with
// one or two workers, the answers of each request arriving last span
// first. A span whose bytes derive from its window verifies the window
// against the span before: its load must not hold a worker while it
// waits for that span's load, which needs one. Inside a synctest bubble,
// a deadlock fails the test instead of hanging it.
func TestZtocPrefetchFewWorkers(t *testing.T) {
	data := kindsLayerTar(t)
	want := tartest.FileContents(t, data)
	layer := gzipLayer(t, 9, gzip.Header{}, data)
	_, enc := makeZtoc(t, layer, soci.Gzip, 16<<10)
	var ranges []FileRange
	for _, name := range sortedNames(want) {
		ranges = append(ranges, FileRange{Name: name})
	}
	for _, workers := range []int{1, 2} {
		synctest.Test(t, func(t *testing.T) {
			f := reversedFetcher{fetcher.FromReaderAt(bytes.NewReader(layer), int64(len(layer)))}
			l, err := Open(context.Background(), f, WithZtoc(enc), WithCache(newMapCache()))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if err := l.Prefetch(context.Background(), ranges, WithPrefetchWorkers(workers)); err != nil {
				t.Fatalf("%d workers: %v", workers, err)
			}
			checkAllFiles(t, l, want)
		})
	}
}

// reversedFetcher answers the ranges of a request last first.
type reversedFetcher struct{ fetcher.Fetcher }

func (f reversedFetcher) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	var got [][]byte
	err := f.Fetcher.Fetch(ctx, ranges, func(_ fetcher.Range, b []byte) error {
		got = append(got, bytes.Clone(b))
		return nil
	})
	for k := len(got) - 1; k >= 0 && err == nil; k-- {
		err = fn(ranges[k], got[k])
	}
	return err
}

// TestZtocFetchAllLoadsEachCachedSpanOnce: deciding which spans to fetch
// asks the cache's Has, so a span already cached is loaded once, to be
// decoded, not twice.
func TestZtocFetchAllLoadsEachCachedSpanOnce(t *testing.T) {
	data := kindsLayerTar(t)
	c := ztocCases(t, data)[0]
	_, enc := makeZtoc(t, c.layer, c.c, 64<<10)
	pc := &probingCache{mapCache: newMapCache()}
	l, err := openZtocLayer(t, c.layer, enc, WithCache(pc))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FetchAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	pc.gets.Store(0)
	if err := l.FetchAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n, spans := pc.gets.Load(), int64(len(l.spans.spans)); n > spans {
		t.Errorf("FetchAll of a cached layer of %d spans loaded %d from the cache", spans, n)
	}
}
