package reader

import (
	"bytes"
	"io"
	"testing"

	"github.com/lazylayer/lazylayer/toc"
)

// readerOnly hides a file's WriterTo, so that io.Copy reads it with a
// small buffer the way cat or http.ServeContent do.
type readerOnly struct{ io.Reader }

func TestSequentialReadsFetchAhead(t *testing.T) {
	b := &blobBuilder{chunkSize: 1 << 10}
	content := pseudoRandom(64<<10, 5)
	b.add(&toc.Entry{Name: "big"}, content)
	blob, index := b.finish()
	l, f := testLayer(t, blob, index)

	file, err := l.Open("big")
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := io.CopyBuffer(struct{ io.Writer }{&got}, readerOnly{file}, make([]byte, 256)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), content) {
		t.Fatal("streamed content differs")
	}
	// The first chunk, then windows of 1, 2, 4, 8 and 16 chunks: far
	// fewer requests than the 64 chunks, and no frame asked for twice.
	if calls := f.calls.Load(); calls > 8 {
		t.Errorf("streaming 64 chunks made %d requests, want at most 8", calls)
	}
	t.Logf("streaming 64 chunks made %d requests", f.calls.Load())
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := make(map[int64]int)
	for _, r := range f.asked {
		seen[r.Offset]++
	}
	for off, n := range seen {
		if n > 1 {
			t.Errorf("frame at %d asked for %d times", off, n)
		}
	}
	if len(seen) != 64 {
		t.Errorf("asked for %d frames, want 64", len(seen))
	}
}

func TestRandomReadsDoNotReadAhead(t *testing.T) {
	b := &blobBuilder{chunkSize: 1 << 10}
	content := pseudoRandom(64<<10, 6)
	b.add(&toc.Entry{Name: "big"}, content)
	blob, index := b.finish()
	l, f := testLayer(t, blob, index)

	file, _ := l.Open("big")
	ra := file.(io.ReaderAt)
	offsets := []int64{40 << 10, 3 << 10, 20<<10 + 7, 60 << 10, 11 << 10}
	for _, off := range offsets {
		buf := make([]byte, 100)
		if n, err := ra.ReadAt(buf, off); n != len(buf) || err != nil || !bytes.Equal(buf, content[off:off+100]) {
			t.Fatalf("ReadAt(100, %d) = %d, %v", off, n, err)
		}
	}
	if calls, ranges := f.calls.Load(), len(f.asked); calls != int64(len(offsets)) || ranges != len(offsets) {
		t.Errorf("%d random reads made %d requests for %d frames; want one frame each", len(offsets), calls, ranges)
	}
}

func TestReadAheadLandsInCache(t *testing.T) {
	b := &blobBuilder{chunkSize: 1 << 10}
	content := pseudoRandom(32<<10, 7)
	b.add(&toc.Entry{Name: "big"}, content)
	blob, index := b.finish()
	c := newMapCache()
	l, f := testLayer(t, blob, index, WithCache(c))

	for pass := range 2 {
		f.reset()
		file, _ := l.Open("big")
		got, err := io.ReadAll(readerOnly{file})
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("pass %d: ReadAll = %d bytes, %v", pass, len(got), err)
		}
		if pass == 1 && f.calls.Load() != 0 {
			t.Errorf("a second sequential read made %d requests, want all from the cache", f.calls.Load())
		}
	}
}
