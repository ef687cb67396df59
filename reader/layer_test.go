package reader

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"testing/synctest"
	"time"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

var modTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// sampleLayer has an entry of every kind, implied directories, a landmark,
// a whiteout and a file spanning several chunks.
func sampleLayer(t *testing.T, share bool, opts ...Option) (*Layer, *countingFetcher, map[string][]byte) {
	b := &blobBuilder{chunkSize: 1000, share: share}
	contents := map[string][]byte{
		"etc/hostname":     []byte("lazy\n"),
		"usr/bin/tool":     pseudoRandom(4500, 1),
		"usr/lib/empty":    {},
		"usr/lib/.wh.gone": {},
		"data/small":       []byte("small file"),
	}
	b.add(&toc.Entry{Name: toc.NoPrefetchLandmark}, []byte{0x0f})
	b.add(&toc.Entry{Name: "etc", Type: toc.TypeDir, Mode: 0o755, ModTime: modTime}, nil)
	b.add(&toc.Entry{Name: "etc/hostname", Mode: 0o644, UID: 1, GID: 2, UserName: "u", ModTime: modTime}, contents["etc/hostname"])
	b.add(&toc.Entry{Name: "usr/bin/tool", Mode: 0o4755, ModTime: modTime, Xattrs: map[string]string{"user.a": "b"}}, contents["usr/bin/tool"])
	b.add(&toc.Entry{Name: "usr/lib/empty", Mode: 0o600}, nil)
	b.add(&toc.Entry{Name: "usr/lib/.wh.gone", Mode: 0o600}, nil)
	b.add(&toc.Entry{Name: "data/small", Mode: 0o644}, contents["data/small"])
	b.add(&toc.Entry{Name: "data/hard", Type: toc.TypeHardlink, LinkName: "usr/bin/tool"}, nil)
	b.add(&toc.Entry{Name: "data/hard2", Type: toc.TypeHardlink, LinkName: "data/hard"}, nil)
	b.add(&toc.Entry{Name: "usr/bin/rel", Type: toc.TypeSymlink, LinkName: "tool"}, nil)
	b.add(&toc.Entry{Name: "usr/bin/abs", Type: toc.TypeSymlink, LinkName: "/etc/hostname"}, nil)
	b.add(&toc.Entry{Name: "usr/bin/up", Type: toc.TypeSymlink, LinkName: "../../../../etc"}, nil)
	b.add(&toc.Entry{Name: "dev/null", Type: toc.TypeChar, Mode: 0o666, DevMajor: 1, DevMinor: 3}, nil)
	b.add(&toc.Entry{Name: "dev/sda", Type: toc.TypeBlock, Mode: 0o660, DevMajor: 8}, nil)
	b.add(&toc.Entry{Name: "run/fifo", Type: toc.TypeFIFO, Mode: 0o600}, nil)
	contents["data/hard"] = contents["usr/bin/tool"]
	contents["data/hard2"] = contents["usr/bin/tool"]
	contents["usr/bin/rel"] = contents["usr/bin/tool"]
	contents["usr/bin/abs"] = contents["etc/hostname"]
	blob, index := b.finish()
	l, f := testLayer(t, blob, index, opts...)
	return l, f, contents
}

func TestLayerReadsEveryFile(t *testing.T) {
	for _, share := range []bool{false, true} {
		l, _, contents := sampleLayer(t, share)
		for name, want := range contents {
			got, err := l.ReadFile(name)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("share=%v: ReadFile(%q) = %d bytes, %v; want %d bytes", share, name, len(got), err, len(want))
			}
			f, err := l.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			got, err = io.ReadAll(struct{ io.Reader }{f}) // defeat WriterTo
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("share=%v: Read(%q) = %d bytes, %v", share, name, len(got), err)
			}
			f.Close()
		}
	}
}

func TestLayerPassesFSTest(t *testing.T) {
	l, _, _ := sampleLayer(t, true)
	if err := fstest.TestFS(l, "etc/hostname", "usr/bin/tool", "data/hard", "usr/lib/.wh.gone", "dev/null", "usr/bin/rel"); err != nil {
		t.Fatal(err)
	}
}

func TestLayerMetadata(t *testing.T) {
	l, _, _ := sampleLayer(t, false)
	for _, tc := range []struct {
		name string
		stat func(string) (fs.FileInfo, error)
		mode fs.FileMode
		size int64
		typ  toc.EntryType
	}{
		{"etc", l.Stat, fs.ModeDir | 0o755, 0, toc.TypeDir},
		{"usr", l.Stat, fs.ModeDir | 0o755, 0, toc.TypeDir}, // implied
		{"usr/bin/tool", l.Stat, fs.ModeSetuid | 0o755, 4500, toc.TypeReg},
		{"data/hard", l.Stat, fs.ModeSetuid | 0o755, 4500, toc.TypeHardlink},
		{"usr/bin/abs", l.Lstat, fs.ModeSymlink, 13, toc.TypeSymlink},
		{"usr/bin/abs", l.Stat, 0o644, 5, toc.TypeReg},
		{"usr/bin/up", l.Stat, fs.ModeDir | 0o755, 0, toc.TypeDir},
		{"dev/null", l.Stat, fs.ModeDevice | fs.ModeCharDevice | 0o666, 0, toc.TypeChar},
		{"dev/sda", l.Stat, fs.ModeDevice | 0o660, 0, toc.TypeBlock},
		{"run/fifo", l.Stat, fs.ModeNamedPipe | 0o600, 0, toc.TypeFIFO},
	} {
		fi, err := tc.stat(tc.name)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		e, ok := fi.Sys().(*toc.Entry)
		if fi.Mode() != tc.mode || fi.Size() != tc.size || !ok || e.Type != tc.typ {
			t.Errorf("%s: mode %v size %d sys %+v; want %v %d %v", tc.name, fi.Mode(), fi.Size(), fi.Sys(), tc.mode, tc.size, tc.typ)
		}
	}
	fi, _ := l.Stat("etc/hostname")
	if e := fi.Sys().(*toc.Entry); e.UID != 1 || e.GID != 2 || e.UserName != "u" || !fi.ModTime().Equal(modTime) {
		t.Errorf("etc/hostname metadata: %+v", e)
	}
	if target, err := l.ReadLink("usr/bin/up"); err != nil || target != "../../../../etc" {
		t.Errorf("ReadLink = %q, %v", target, err)
	}
	if _, err := l.ReadLink("etc"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("ReadLink(dir) error = %v", err)
	}
}

func TestLayerHidesLandmarksAndCreatesImpliedDirs(t *testing.T) {
	l, _, _ := sampleLayer(t, false)
	entries, err := l.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got, want := names, []string{"data", "dev", "etc", "run", "usr"}; !equalStrings(got, want) {
		t.Errorf("root = %v, want %v", got, want)
	}
	if _, err := l.Stat(toc.NoPrefetchLandmark); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("landmark visible: %v", err)
	}
}

func TestLayerRejectsInvalidNames(t *testing.T) {
	l, _, _ := sampleLayer(t, false)
	for _, name := range []string{"../etc/hostname", "/etc/hostname", "etc/../etc/hostname", "etc/", ""} {
		if _, err := l.Open(name); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Open(%q) error = %v, want ErrInvalid", name, err)
		}
	}
}

func TestDuplicateNamesLastWins(t *testing.T) {
	b := &blobBuilder{}
	b.add(&toc.Entry{Name: "d/child"}, []byte("child"))
	b.add(&toc.Entry{Name: "f"}, []byte("first"))
	b.add(&toc.Entry{Name: "d", Type: toc.TypeDir, Mode: 0o700}, nil) // keeps d/child
	b.add(&toc.Entry{Name: "./f"}, []byte("second"))
	b.add(&toc.Entry{Name: "x"}, []byte("file"))
	b.add(&toc.Entry{Name: "x/y"}, []byte("under")) // x becomes a directory
	blob, index := b.finish()
	l, _ := testLayer(t, blob, index)
	for name, want := range map[string]string{"f": "second", "d/child": "child", "x/y": "under"} {
		if got, err := l.ReadFile(name); err != nil || string(got) != want {
			t.Errorf("ReadFile(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	if fi, err := l.Stat("d"); err != nil || fi.Mode() != fs.ModeDir|0o700 {
		t.Errorf("Stat(d) = %v, %v", fi, err)
	}
}

func TestLinkErrors(t *testing.T) {
	b := &blobBuilder{}
	b.add(&toc.Entry{Name: "a", Type: toc.TypeHardlink, LinkName: "b"}, nil)
	b.add(&toc.Entry{Name: "b", Type: toc.TypeHardlink, LinkName: "c"}, nil)
	b.add(&toc.Entry{Name: "c", Type: toc.TypeHardlink, LinkName: "a"}, nil)
	b.add(&toc.Entry{Name: "self", Type: toc.TypeHardlink, LinkName: "self"}, nil)
	b.add(&toc.Entry{Name: "into", Type: toc.TypeHardlink, LinkName: "a"}, nil)
	b.add(&toc.Entry{Name: "missing", Type: toc.TypeHardlink, LinkName: "nowhere"}, nil)
	b.add(&toc.Entry{Name: "dir", Type: toc.TypeDir}, nil)
	b.add(&toc.Entry{Name: "todir", Type: toc.TypeHardlink, LinkName: "dir"}, nil)
	b.add(&toc.Entry{Name: "s1", Type: toc.TypeSymlink, LinkName: "s2"}, nil)
	b.add(&toc.Entry{Name: "s2", Type: toc.TypeSymlink, LinkName: "/s1"}, nil)
	blob, index := b.finish()
	l, _ := testLayer(t, blob, index)
	for name, want := range map[string]error{
		"a": ErrLinkLoop, "c": ErrLinkLoop, "self": ErrLinkLoop, "into": ErrLinkLoop,
		"missing": ErrCorrupt, "todir": ErrCorrupt, "s1": ErrLinkLoop, "s2/x": ErrLinkLoop,
	} {
		if _, err := l.Open(name); !errors.Is(err, want) {
			t.Errorf("Open(%q) error = %v, want %v", name, err, want)
		}
	}
	if _, err := l.Lstat("s1"); err != nil {
		t.Errorf("Lstat(s1) = %v", err)
	}
}

func TestCorruptChunkYieldsNoBytes(t *testing.T) {
	b := &blobBuilder{chunkSize: 100}
	content := pseudoRandom(300, 7)
	b.add(&toc.Entry{Name: "f"}, content)
	blob, index := b.finish()
	index.Entries[0].Chunks[1].Digest = digest.FromString("something else")
	l, _ := testLayer(t, blob, index, WithConcurrency(1))

	f, _ := l.Open("f")
	buf := make([]byte, 50)
	if n, err := f.(io.ReaderAt).ReadAt(buf, 120); n != 0 || !errors.Is(err, ErrChunkDigest) || !bytes.Equal(buf, make([]byte, 50)) {
		t.Errorf("ReadAt in bad chunk = %d, %v", n, err)
	}
	buf = make([]byte, 300)
	n, err := f.(io.ReaderAt).ReadAt(buf, 0)
	if n != 100 || !errors.Is(err, ErrChunkDigest) || !bytes.Equal(buf[:100], content[:100]) || !bytes.Equal(buf[100:], make([]byte, 200)) {
		t.Errorf("ReadAt across bad chunk = %d, %v", n, err)
	}
	if _, err := l.ReadFile("f"); !errors.Is(err, ErrChunkDigest) {
		t.Errorf("ReadFile error = %v", err)
	}

	// Flip a compressed byte: either gzip or the digest must object.
	b = &blobBuilder{}
	b.add(&toc.Entry{Name: "g"}, content)
	blob, index = b.finish()
	blob[len(blob)/2] ^= 0xff
	l, _ = testLayer(t, blob, index)
	if _, err := l.ReadFile("g"); !errors.Is(err, ErrChunkDigest) && !errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadFile of damaged frame error = %v", err)
	}
}

func TestUnverifiableChunk(t *testing.T) {
	b := &blobBuilder{chunkSize: 100}
	b.add(&toc.Entry{Name: "f"}, pseudoRandom(300, 1))
	blob, index := b.finish()
	index.Entries[0].Chunks[2].Digest = ""
	l, _ := testLayer(t, blob, index)
	if _, err := l.ReadFile("f"); !errors.Is(err, ErrUnverifiable) {
		t.Errorf("error = %v, want ErrUnverifiable", err)
	}
	// A single-chunk file is verified by the file digest.
	b = &blobBuilder{}
	b.add(&toc.Entry{Name: "one"}, []byte("one chunk"))
	blob, index = b.finish()
	index.Entries[0].Chunks[0].Digest = ""
	l, _ = testLayer(t, blob, index)
	if got, err := l.ReadFile("one"); err != nil || string(got) != "one chunk" {
		t.Errorf("ReadFile = %q, %v", got, err)
	}
}

func TestInvalidIndexRejected(t *testing.T) {
	for name, damage := range map[string]func(e *toc.Entry){
		"frame past data": func(e *toc.Entry) { e.Chunks[0].FrameEnd = 1 << 40 },
		"negative frame":  func(e *toc.Entry) { e.Chunks[0].FrameOffset = -1 },
		"empty frame":     func(e *toc.Entry) { e.Chunks[0].FrameEnd = e.Chunks[0].FrameOffset },
		"absurd size":     func(e *toc.Entry) { e.Size, e.Chunks[1].Size = 1<<60, 1<<60-100 },
		"absurd inner":    func(e *toc.Entry) { e.Chunks[0].InnerOffset = 1 << 50 },
		"gap":             func(e *toc.Entry) { e.Chunks[1].Offset++ },
		"short coverage":  func(e *toc.Entry) { e.Size++ },
		"negative size":   func(e *toc.Entry) { e.Size = -1 },
		"negative inner":  func(e *toc.Entry) { e.Chunks[0].InnerOffset = -5 },
	} {
		b := &blobBuilder{chunkSize: 100}
		b.add(&toc.Entry{Name: "f"}, pseudoRandom(200, 1))
		blob, index := b.finish()
		damage(index.Entries[0])
		_, err := newLayer(context.Background(), nil, index, int64(len(blob)), newConfig(nil))
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error = %v, want ErrCorrupt", name, err)
		}
	}
}

func TestRandomReadsTouchOnlyTheirChunks(t *testing.T) {
	b := &blobBuilder{chunkSize: 1 << 10}
	content := pseudoRandom(100<<10, 3)
	b.add(&toc.Entry{Name: "big"}, content)
	blob, index := b.finish()
	l, f := testLayer(t, blob, index)
	for _, tc := range []struct {
		off, n int64
		chunks int64
	}{{0, 10, 1}, {50 << 10, 1 << 10, 1}, {(50 << 10) - 1, 2, 2}, {99 << 10, 5 << 10, 1}, {10 << 10, 3 << 10, 3}} {
		f.reset()
		file, _ := l.Open("big") // a fresh handle remembers no chunk
		buf := make([]byte, tc.n)
		n, err := file.(io.ReaderAt).ReadAt(buf, tc.off)
		if want := min(tc.n, int64(len(content))-tc.off); int64(n) != want || !bytes.Equal(buf[:n], content[tc.off:tc.off+want]) {
			t.Errorf("ReadAt(%d, %d) = %d, %v", tc.n, tc.off, n, err)
		}
		// A read spanning several chunks asks for all their frames in
		// one request.
		if calls, ranges := f.calls.Load(), int64(len(f.asked)); calls != 1 || ranges != tc.chunks {
			t.Errorf("ReadAt(%d, %d) made %d requests for %d ranges, want 1 for %d", tc.n, tc.off, calls, ranges, tc.chunks)
		}
	}
	// Sequential small reads within one chunk fetch it once (and may
	// read the next one ahead).
	f.reset()
	file, _ := l.Open("big")
	file.(io.Seeker).Seek(20<<10, io.SeekStart)
	for range 16 {
		file.Read(make([]byte, 64))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fetched := 0
	for _, r := range f.asked {
		if r.Offset == index.Entries[0].Chunks[20].FrameOffset {
			fetched++
		}
	}
	if fetched != 1 {
		t.Errorf("16 small reads fetched their chunk %d times", fetched)
	}
}

func TestConcurrentReadsShareOneFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, share := range []bool{false, true} {
			b := &blobBuilder{share: share}
			b.add(&toc.Entry{Name: "a"}, pseudoRandom(5000, 1))
			b.add(&toc.Entry{Name: "b"}, pseudoRandom(5000, 2))
			blob, index := b.finish()
			c := newMapCache()
			l, f := testLayer(t, blob, index, WithCache(c))
			f.gate = make(chan struct{})
			const readers = 8
			var wg sync.WaitGroup
			errs := make([]error, readers)
			for i := range readers {
				wg.Go(func() { _, errs[i] = l.ReadFile("a") })
			}
			frame := index.Entries[0].Chunks[0].FrameOffset
			waitFor(t, func() bool {
				l.flights.mu.Lock()
				defer l.flights.mu.Unlock()
				fl := l.flights.m[frame]
				return fl != nil && fl.waiters == readers
			})
			close(f.gate)
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if got := f.calls.Load(); got != 1 {
				t.Errorf("share=%v: %d readers made %d fetches", share, readers, got)
			}
			// In a shared frame the sibling was verified and cached too.
			f.reset()
			if _, err := l.ReadFile("b"); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int64{false: 1, true: 0}[share]; f.calls.Load() != want {
				t.Errorf("share=%v: reading the sibling fetched %d times, want %d", share, f.calls.Load(), want)
			}
		}
	})
}

func TestCancelledReaderDoesNotCancelOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &blobBuilder{}
		b.add(&toc.Entry{Name: "a"}, pseudoRandom(5000, 1))
		blob, index := b.finish()
		l, f := testLayer(t, blob, index)
		f.gate = make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { _, _, err := l.chunkData(ctx, chunkRef{0, 0}, nil); done <- err }()
		var data []byte
		var err2 error
		finished := make(chan struct{})
		go func() { data, _, err2 = l.chunkData(context.Background(), chunkRef{0, 0}, nil); close(finished) }()
		waitFor(t, func() bool {
			l.flights.mu.Lock()
			defer l.flights.mu.Unlock()
			fl := l.flights.m[0]
			return fl != nil && fl.waiters == 2
		})
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled reader error = %v", err)
		}
		close(f.gate)
		<-finished
		if err2 != nil || len(data) != 5000 {
			t.Errorf("other reader = %d bytes, %v", len(data), err2)
		}
	})
}

func TestCacheServesAndIsChecked(t *testing.T) {
	b := &blobBuilder{chunkSize: 1000}
	content := pseudoRandom(3000, 9)
	b.add(&toc.Entry{Name: "f"}, content)
	blob, index := b.finish()
	c := newMapCache()
	l, f := testLayer(t, blob, index, WithCache(c))
	if _, err := l.ReadFile("f"); err != nil {
		t.Fatal(err)
	}
	if c.adds != 3 {
		t.Errorf("cache got %d adds, want 3", c.adds)
	}
	f.reset()
	l2, f2 := testLayer(t, blob, index, WithCache(c))
	if got, err := l2.ReadFile("f"); err != nil || !bytes.Equal(got, content) || f2.calls.Load() != 0 {
		t.Errorf("cached read = %v, %d fetches", err, f2.calls.Load())
	}
	// A cache returning wrong bytes is ignored, not believed.
	c.m[index.Entries[0].Chunks[1].Digest] = bytes.Repeat([]byte{1}, 1000)
	if got, err := l2.ReadFile("f"); err != nil || !bytes.Equal(got, content) || f2.calls.Load() != 1 {
		t.Errorf("read past bad cache entry = %v, %d fetches", err, f2.calls.Load())
	}
}

func TestClosedLayer(t *testing.T) {
	l, _, _ := sampleLayer(t, false)
	f, _ := l.Open("usr/bin/tool")
	l.Close()
	if _, err := f.Read(make([]byte, 10)); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Read after layer Close = %v", err)
	}
	if _, err := l.Open("etc"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Open after Close = %v", err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMalformedDigestsAreErrors(t *testing.T) {
	for _, d := range []digest.Digest{"sha256", "sha256:zz", "md5:abcd", ":", "sha512:00"} {
		// A file of one chunk, whose digest is the chunk's.
		b := &blobBuilder{}
		b.add(&toc.Entry{Name: "f"}, []byte("content"))
		blob, index := b.finish()
		index.Entries[0].Chunks[0].Digest = d
		index.Entries[0].Digest = d
		l, _ := testLayer(t, blob, index)
		if _, err := l.ReadFile("f"); !errors.Is(err, ErrChunkDigest) {
			t.Errorf("digest %q: error = %v, want ErrChunkDigest", d, err)
		}
		// A file of several chunks, whose whole digest is malformed.
		b = &blobBuilder{chunkSize: 4}
		b.add(&toc.Entry{Name: "f"}, []byte("content"))
		blob, index = b.finish()
		index.Entries[0].Digest = d
		l, _ = testLayer(t, blob, index)
		if _, err := l.ReadFile("f"); !errors.Is(err, ErrChunkDigest) {
			t.Errorf("file digest %q: error = %v, want ErrChunkDigest", d, err)
		}
	}
}

// observedSampleLayer is sampleLayer with an access observer; accesses
// returns what it was told so far.
func observedSampleLayer(t *testing.T, opts ...Option) (l *Layer, accesses func() []Access) {
	var mu sync.Mutex
	var got []Access
	l, _, _ = sampleLayer(t, false, append(opts, WithAccessObserver(func(a Access) {
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
	}))...)
	return l, func() []Access {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func TestAccessObserverRecordsFirstReads(t *testing.T) {
	l, accesses := observedSampleLayer(t, WithConcurrency(1))
	l.ReadFile("etc/hostname")
	l.ReadFile("etc/hostname")
	f, _ := l.Open("data/hard") // a hard link to usr/bin/tool, 5 chunks
	f.(io.ReaderAt).ReadAt(make([]byte, 10), 2500)
	f.(io.ReaderAt).ReadAt(make([]byte, 10), 2600)
	l.ReadFile("usr/bin/tool")
	got := accesses()
	want := []struct {
		name  string
		chunk int
	}{{"etc/hostname", 0}, {"usr/bin/tool", 2}, {"usr/bin/tool", 0}, {"usr/bin/tool", 1}, {"usr/bin/tool", 3}, {"usr/bin/tool", 4}}
	if len(got) != len(want) {
		t.Fatalf("got %d accesses, want %d: %+v", len(got), len(want), got)
	}
	for i, a := range got {
		if a.Seq != int64(i) || a.Entry.Name != want[i].name || a.Chunk != want[i].chunk || a.Err != nil || a.Start.IsZero() {
			t.Errorf("access %d = %+v, want %v", i, a, want[i])
		}
	}
}

// TestUnobservedReadsAreNotAccesses: a planner's reads, under
// Unobserved, neither reach the observer nor hide the workload's first
// read of the same chunks.
func TestUnobservedReadsAreNotAccesses(t *testing.T) {
	l, accesses := observedSampleLayer(t)
	f, err := l.Open("usr/bin/tool") // 5 chunks
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := int64(0)
	if info, err := f.Stat(); err == nil {
		size = info.Size()
	}
	buf := make([]byte, size)
	if _, err := f.(ContextReaderAt).ReadAtContext(Unobserved(t.Context()), buf, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if got := accesses(); len(got) != 0 {
		t.Fatalf("unobserved reads reported %d accesses: %+v", len(got), got)
	}
	if _, err := l.ReadFile("usr/bin/tool"); err != nil {
		t.Fatal(err)
	}
	if got := accesses(); len(got) != 5 {
		t.Errorf("the workload's read after the planner's reported %d accesses, want 5", len(got))
	}
}

func TestBatchedReadSkipsCachedChunksAndReportsFetchErrors(t *testing.T) {
	b := &blobBuilder{chunkSize: 1000}
	content := pseudoRandom(3000, 5)
	b.add(&toc.Entry{Name: "f"}, content)
	blob, index := b.finish()
	c := newMapCache()
	e := index.Entries[0]
	c.Add(e.Chunks[1].Digest, content[1000:2000])
	l, f := testLayer(t, blob, index, WithCache(c))
	got, err := l.ReadFile("f")
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("ReadFile = %d bytes, %v", len(got), err)
	}
	if calls, ranges := f.calls.Load(), len(f.asked); calls != 1 || ranges != 2 {
		t.Errorf("made %d requests for %d ranges, want 1 for 2", calls, ranges)
	}

	// A fetch that fails part way releases every chunk waiting on it.
	boom := errors.New("boom")
	l2, _ := testLayer(t, blob, index)
	l2.fetcher = failAfterFirst{l2.fetcher, boom}
	buf := make([]byte, 3000)
	file, _ := l2.Open("f")
	if n, err := file.(io.ReaderAt).ReadAt(buf, 0); !errors.Is(err, boom) || n > 1000 || !bytes.Equal(buf[:n], content[:n]) {
		t.Errorf("ReadAt with failing fetcher = %d, %v", n, err)
	}
}

// failAfterFirst delivers the first range of a Fetch, then fails.
type failAfterFirst struct {
	fetcher.Fetcher
	err error
}

func (f failAfterFirst) Fetch(ctx context.Context, rs []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	if err := f.Fetcher.Fetch(ctx, rs[:1], fn); err != nil {
		return err
	}
	if len(rs) > 1 {
		return f.err
	}
	return nil
}

func TestWriteToLoadsEachChunkOnce(t *testing.T) {
	b := &blobBuilder{chunkSize: 1000}
	content := pseudoRandom(10500, 8)
	b.add(&toc.Entry{Name: "f"}, content)
	blob, index := b.finish()
	l, f := testLayer(t, blob, index, WithConcurrency(3))
	file, _ := l.Open("f")
	file.(io.Seeker).Seek(1500, io.SeekStart)
	var out bytes.Buffer
	if n, err := io.Copy(&out, file); err != nil || n != 9000 || !bytes.Equal(out.Bytes(), content[1500:]) {
		t.Fatalf("io.Copy = %d, %v", n, err)
	}
	if ranges := len(f.asked); ranges != 10 {
		t.Errorf("fetched %d frames for 10 chunks", ranges)
	}
}
