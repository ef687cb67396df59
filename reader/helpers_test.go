package reader

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/klauspost/compress/gzip"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// blobBuilder lays out eStargz-style gzip members without tar headers or a
// TOC member: enough to exercise chunk loading against a hand-made index.
type blobBuilder struct {
	chunkSize int64
	// share packs consecutive chunks into one member, as eStargz does
	// with a minimum chunk size, with filler bytes between them standing
	// in for tar headers.
	share bool

	blob    bytes.Buffer
	entries []*toc.Entry
	member  bytes.Buffer // uncompressed bytes of the open shared member
	start   int64        // blob offset of the open shared member
	pending []*toc.Chunk // chunks in the open shared member
}

func (b *blobBuilder) add(e *toc.Entry, content []byte) *toc.Entry {
	if e.Type == 0 {
		e.Type = toc.TypeReg
	}
	if e.Type == toc.TypeReg {
		e.Size = int64(len(content))
		e.Digest = digest.FromBytes(content)
		size := b.chunkSize
		if size <= 0 {
			size = 1 << 20
		}
		for off := int64(0); off < e.Size; off += size {
			data := content[off:min(off+size, e.Size)]
			e.Chunks = append(e.Chunks, toc.Chunk{Offset: off, Size: int64(len(data)), Digest: digest.FromBytes(data)})
		}
		for i := range e.Chunks {
			c := &e.Chunks[i]
			b.place(c, content[c.Offset:c.Offset+c.Size])
		}
	}
	b.entries = append(b.entries, e)
	return e
}

func (b *blobBuilder) place(c *toc.Chunk, data []byte) {
	if !b.share {
		c.FrameOffset = int64(b.blob.Len())
		b.blob.Write(gzipBytes(data))
		c.FrameEnd = int64(b.blob.Len())
		return
	}
	if len(b.pending) == 0 {
		b.start = int64(b.blob.Len())
	}
	b.member.Write(bytes.Repeat([]byte{'h'}, 100)) // a "tar header"
	c.InnerOffset = int64(b.member.Len())
	b.member.Write(data)
	b.pending = append(b.pending, c)
}

func (b *blobBuilder) flush() {
	if len(b.pending) == 0 {
		return
	}
	b.blob.Write(gzipBytes(b.member.Bytes()))
	for _, c := range b.pending {
		c.FrameOffset, c.FrameEnd = b.start, int64(b.blob.Len())
	}
	b.pending = nil
	b.member.Reset()
}

// finish returns the blob and its index.
func (b *blobBuilder) finish() ([]byte, *toc.TOC) {
	b.flush()
	return b.blob.Bytes(), &toc.TOC{Format: toc.FormatEStargz, Entries: b.entries}
}

func gzipBytes(data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

// testLayer opens t over blob without a footer, as Open does after
// decoding the index.
func testLayer(t *testing.T, blob []byte, index *toc.TOC, opts ...Option) (*Layer, *countingFetcher) {
	t.Helper()
	f := &countingFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))}
	l, err := newLayer(context.Background(), f, index, int64(len(blob)), newConfig(opts))
	if err != nil {
		t.Fatalf("newLayer: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, f
}

// countingFetcher counts Fetch calls and the ranges they asked for, and
// can hold fetches until released.
type countingFetcher struct {
	fetcher.Fetcher
	calls atomic.Int64
	mu    sync.Mutex
	asked []fetcher.Range
	gate  chan struct{} // if non-nil, fetches wait for it to close
}

func (c *countingFetcher) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	c.calls.Add(1)
	c.mu.Lock()
	c.asked = append(c.asked, ranges...)
	gate := c.gate
	c.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return c.Fetcher.Fetch(ctx, ranges, fn)
}

func (c *countingFetcher) reset() {
	c.calls.Store(0)
	c.mu.Lock()
	c.asked = nil
	c.mu.Unlock()
}

// mapCache is a minimal cache.Cache for tests.
type mapCache struct {
	mu   sync.Mutex
	m    map[digest.Digest][]byte
	adds int
}

func newMapCache() *mapCache { return &mapCache{m: make(map[digest.Digest][]byte)} }

func (c *mapCache) Get(k digest.Digest) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.m[k]
	return d, ok
}

func (c *mapCache) Add(k digest.Digest, d []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[k] = d
	c.adds++
}

// waitFor waits until every other goroutine of the test's synctest
// bubble is blocked, and then requires cond: it lines goroutines up
// without polling.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	synctest.Wait()
	if !cond() {
		t.Fatal("condition not reached once the test's goroutines were blocked")
	}
}

func pseudoRandom(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}
