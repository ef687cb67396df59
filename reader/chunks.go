package reader

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// loadChunk returns the verified bytes of ref's chunk. It is the one path
// by which file content leaves the blob: the cache is consulted first,
// concurrent loads of one frame share a single fetch, and no byte is
// returned before its digest matched the index. The frame is fetched
// through src, or alone if src is nil.
//
// The caller must not modify data unless exclusive reports that nobody
// else (no cache, no other reader) holds it.
func (l *Layer) loadChunk(ctx context.Context, ref chunkRef, src frameSource) (data []byte, exclusive bool, err error) {
	e, i := l.entry(ref.id), int(ref.index)
	c := &e.Chunks[i]
	if c.Size == 0 {
		return []byte{}, true, nil
	}
	want := chunkDigest(e, i)
	if c.Zeros {
		// Reads of part of a file serve zeros without building them
		// (see zeroChunk); a caller that wants the chunk whole gets it.
		if err := l.checkZeros(ctx, want, c.Size); err != nil {
			return nil, false, err
		}
		return make([]byte, c.Size), true, nil
	}
	if want == "" && l.blob.verify() == verifyChunks {
		return nil, false, ErrUnverifiable
	}
	// A load may add to the cache: Close waits for it.
	if !l.tasks.add() {
		return nil, false, fs.ErrClosed
	}
	defer l.tasks.done()
	if data, ok := l.cachedChunk(e, i); ok {
		return data, false, nil
	}
	if src == nil {
		src = l.fetchFrame
	}
	cached := l.cfg.cache != nil
	key := span{c.InnerOffset, c.Size, want}
	res, shared, err := l.flights.do(ctx, l.ctx, c.FrameOffset, func(ctx context.Context) (frameResult, error) {
		return l.loadFrameRefetching(ctx, ref, cached, src)
	})
	if err != nil {
		return nil, false, err
	}
	r, ok := res[key]
	if !ok {
		// The load we joined was for another chunk of the same frame
		// and did not decompress this one: load it alone.
		if res, err = l.loadFrame(ctx, ref, false, src); err != nil {
			return nil, false, err
		}
		r, shared = res[key], false
	}
	// Spans are kept decoded, and shared.
	return r.data, !shared && !cached && l.blob.verify() == verifyChunks, r.err
}

// cachedChunk returns e.Chunks[i] from the cache, if it is there and
// intact. A cache may be shared with code we do not control, or be a
// directory that rotted: what it returns is checked like any other source,
// unless the cache promises to verify it itself (cache.Verifying), as
// hashing a whole chunk to serve a small read costs more than the read.
func (l *Layer) cachedChunk(e *toc.Entry, i int) ([]byte, bool) {
	if l.blob.verify() == verifySpans {
		// The cache holds compressed spans: only a span decoded in
		// memory serves a chunk without decoding.
		return l.cachedSpanChunk(e, i)
	}
	if l.cfg.cache == nil {
		return nil, false
	}
	c := &e.Chunks[i]
	want := chunkDigest(e, i)
	if want == "" || c.Size == 0 || c.Zeros {
		return nil, false
	}
	data, ok := l.cfg.cache.Get(want)
	if !ok || int64(len(data)) != c.Size || !l.cfg.cacheVerifies && verify(want, data) != nil {
		return nil, false
	}
	return data, true
}

// A frameSource returns the compressed bytes of one frame.
type frameSource func(ctx context.Context, frame fetcher.Range) ([]byte, error)

// fetchFrame is the frameSource that fetches a frame on its own.
func (l *Layer) fetchFrame(ctx context.Context, frame fetcher.Range) ([]byte, error) {
	var compressed []byte
	err := l.fetcher.Fetch(ctx, []fetcher.Range{frame}, func(r fetcher.Range, data []byte) error {
		if r != frame || int64(len(data)) != frame.Length {
			return fmt.Errorf("fetcher returned %d bytes at %d for range %v: %w", len(data), r.Offset, frame, ErrCorrupt)
		}
		compressed = data
		return nil
	})
	return compressed, err
}

// frameBatch fetches a set of frames with one Fetch call, so that a read
// spanning many chunks costs the fetcher one request it can coalesce
// rather than one per chunk. The fetch starts at the first get.
type frameBatch struct {
	layer   *Layer
	ctx     context.Context // the layer's, with the planning read's values
	start   sync.Once
	started atomic.Bool
	fetched chan struct{} // closed when the Fetch has returned
	ranges  []fetcher.Range
	slots   map[int64]*frameSlot // by frame offset
}

type frameSlot struct {
	once sync.Once
	done chan struct{}
	data []byte
	err  error
}

func (s *frameSlot) fill(data []byte, err error) {
	s.once.Do(func() {
		s.data, s.err = data, err
		close(s.done)
	})
}

// newFrameBatch plans one fetch of the distinct frames in frames.
func (l *Layer) newFrameBatch(ctx context.Context, frames []fetcher.Range) *frameBatch {
	b := &frameBatch{layer: l, ctx: withValues(l.ctx, ctx), fetched: make(chan struct{}), slots: make(map[int64]*frameSlot, len(frames))}
	for _, r := range frames {
		if _, dup := b.slots[r.Offset]; !dup {
			b.slots[r.Offset] = &frameSlot{done: make(chan struct{})}
			b.ranges = append(b.ranges, r)
		}
	}
	return b
}

// get is a frameSource serving the batch's frames, and fetching any other
// frame alone.
func (b *frameBatch) get(ctx context.Context, frame fetcher.Range) ([]byte, error) {
	slot := b.slots[frame.Offset]
	if slot == nil {
		return b.layer.fetchFrame(ctx, frame)
	}
	b.start.Do(func() {
		b.started.Store(true)
		b.layer.goTask(b.fetch)
	})
	select {
	case <-slot.done:
		if slot.err == nil && int64(len(slot.data)) != frame.Length {
			return nil, fmt.Errorf("frame %v planned as %d bytes: %w", frame, len(slot.data), ErrCorrupt)
		}
		return slot.data, slot.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// wait returns once the batch's Fetch, if a get started it, has returned.
// A frame arrives before its Fetch returns, which may still be finishing
// its request and reporting it to the fetcher's observer: a caller that
// promises its requests are over when it returns waits for this.
func (b *frameBatch) wait() {
	if b.started.Load() {
		<-b.fetched
	}
}

// fetch runs the batch's one Fetch under the layer's context, so that it
// ends with the layer (carrying the values of the context of the read that
// planned it), and releases every slot whatever happens.
func (b *frameBatch) fetch() {
	defer close(b.fetched)
	err := b.layer.fetcher.Fetch(b.ctx, b.ranges, func(r fetcher.Range, data []byte) error {
		slot := b.slots[r.Offset]
		if slot == nil || int64(len(data)) != r.Length {
			return fmt.Errorf("fetcher returned %d bytes at %d, not a planned frame: %w", len(data), r.Offset, ErrCorrupt)
		}
		slot.fill(data, nil)
		return nil
	})
	if err == nil {
		err = fmt.Errorf("fetcher skipped a range: %w", ErrCorrupt)
	}
	for _, slot := range b.slots {
		slot.fill(nil, err)
	}
}

// span identifies a chunk's bytes within its frame.
type span struct {
	inner, size int64
	digest      digest.Digest
}

type spanResult struct {
	data []byte
	err  error
}

// frameResult holds the chunks one frame load decompressed and verified.
type frameResult map[span]spanResult

// loadFrame fetches the frame holding ref's chunk, decompresses it and
// verifies the chunk. With siblings, it also verifies the other chunks
// stored in the frame and adds all good ones to the cache: files that
// share a frame were packed together because they are small, and are
// likely to be read together.
func (l *Layer) loadFrame(ctx context.Context, ref chunkRef, siblings bool, src frameSource) (frameResult, error) {
	c := l.chunk(ref)
	want := span{c.InnerOffset, c.Size, l.chunkDigest(ref)}
	plan := []span{want}
	if siblings {
		for _, s := range l.frames[c.FrameOffset] {
			sc := l.chunk(s)
			sp := span{sc.InnerOffset, sc.Size, l.chunkDigest(s)}
			if sp.digest == "" && l.blob.verify() == verifyChunks || sp == want || sp.inner < want.inner+want.size && want.inner < sp.inner+sp.size {
				continue
			}
			plan = append(plan, sp)
		}
		slices.SortFunc(plan, func(a, b span) int {
			return cmp.Or(cmp.Compare(a.inner, b.inner), cmp.Compare(a.size, b.size))
		})
	}

	frame := fetcher.Range{Offset: c.FrameOffset, Length: c.FrameEnd - c.FrameOffset}
	if l.blob.verify() == verifySpans {
		return l.loadSpanFrame(ctx, frame, disjoint(plan), src)
	}
	compressed, err := src(ctx, frame)
	if err != nil {
		return nil, fmt.Errorf("fetch frame %v: %w", frame, err)
	}

	plan = disjoint(plan)
	res := make(frameResult, len(plan))
	err = l.decompress(compressed, func(r io.Reader) error {
		return l.readSpans(r, plan, res)
	})
	if err != nil {
		if _, ok := res[want]; !ok {
			return nil, fmt.Errorf("decompress frame %v: %w", frame, err)
		}
	}
	return res, nil
}

// disjoint returns the spans of plan, sorted by offset, that do not
// overlap an earlier one. The wanted span overlaps no other, so it stays.
func disjoint(plan []span) []span {
	var end int64
	return slices.DeleteFunc(plan, func(sp span) bool {
		if sp.inner < end {
			return true
		}
		end = sp.inner + sp.size
		return false
	})
}

// readSpans reads the spans of plan from r, a frame's decompressed
// bytes, verifies them, records each in res and adds the good ones to the
// cache. It stops at r's first error.
func (l *Layer) readSpans(r io.Reader, plan []span, res frameResult) error {
	var pos int64
	for _, sp := range plan {
		if _, err := io.CopyN(io.Discard, r, sp.inner-pos); err != nil {
			return truncated(err)
		}
		pos = sp.inner + sp.size
		data := make([]byte, sp.size)
		mismatch, err := readChunk(data, sp.digest, func(lo, hi int) error {
			if _, err := io.ReadFull(r, data[lo:hi]); err != nil {
				return truncated(err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if mismatch != nil {
			res[sp] = spanResult{err: mismatch}
			continue
		}
		res[sp] = spanResult{data: data}
		if l.cfg.cache != nil {
			cache.AddVerified(l.cfg.cache, sp.digest, data) // readChunk hashed it
		}
	}
	return nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("frame ends early: %w", ErrCorrupt)
	}
	return fmt.Errorf("%w: %w", ErrCorrupt, err)
}

// decompress calls fn with a reader of the frame's decompressed bytes,
// decoded as the layer's format says.
func (l *Layer) decompress(frame []byte, fn func(io.Reader) error) error {
	return l.blob.decompress(&l.decoders, frame, fn)
}

// flightGroup collapses concurrent loads of one frame into one. A load
// runs under the layer's context and is cancelled only when every caller
// waiting for it has given up.
type flightGroup struct {
	// spawn runs a load of its own on a new goroutine (Layer.goTask).
	spawn func(func())

	mu sync.Mutex
	m  map[int64]*flight
}

type flight struct {
	ctx     context.Context // the load's, under the layer's
	cancel  context.CancelFunc
	done    chan struct{}
	res     frameResult
	err     error
	waiters int
	shared  bool // more than one caller received res
}

// do returns the result of load for key, running it unless a load for key
// is already under way. shared reports whether other callers received
// the same result.
//
// A caller whose ctx is base waits for as long as the load can run, so
// it runs the load itself rather than on a goroutine of its own: a reader
// then pays no goroutine hand-off per chunk.
func (g *flightGroup) do(ctx, base context.Context, key int64, load func(context.Context) (frameResult, error)) (res frameResult, shared bool, err error) {
	if ctx != base {
		f, _ := g.join(withValues(base, ctx), key, load)
		return g.wait(ctx, key, f)
	}
	f, started := g.enter(base, key)
	if started {
		g.run(key, f, load)
	}
	return g.wait(ctx, key, f)
}

// join counts a new waiter of the load for key, starting load on its own
// goroutine under base unless a load for key is already under way;
// started reports which. The waiter must then call wait.
func (g *flightGroup) join(base context.Context, key int64, load func(context.Context) (frameResult, error)) (f *flight, started bool) {
	f, started = g.enter(base, key)
	if started {
		g.spawn(func() { g.run(key, f, load) })
	}
	return f, started
}

// enter counts a new waiter of the flight for key, creating the flight
// under base if there is none; started reports that it did, and that the
// caller must run it.
func (g *flightGroup) enter(base context.Context, key int64) (f *flight, started bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = make(map[int64]*flight)
	}
	f = g.m[key]
	if f == nil {
		started = true
		f = &flight{done: make(chan struct{})}
		f.ctx, f.cancel = context.WithCancel(base)
		g.m[key] = f
	}
	f.waiters++
	return f, started
}

// run runs load as the flight f for key and releases its waiters.
func (g *flightGroup) run(key int64, f *flight, load func(context.Context) (frameResult, error)) {
	f.res, f.err = load(f.ctx)
	g.mu.Lock()
	if g.m[key] == f {
		delete(g.m, key)
	}
	f.shared = f.waiters > 1
	g.mu.Unlock()
	f.cancel()
	close(f.done)
}

// wait returns the result of the flight f for key that the caller joined,
// or gives up when ctx is done; the load is cancelled when its last waiter
// gives up.
func (g *flightGroup) wait(ctx context.Context, key int64, f *flight) (res frameResult, shared bool, err error) {
	select {
	case <-f.done:
		return f.res, f.shared, f.err
	case <-ctx.Done():
		g.mu.Lock()
		if f.waiters--; f.waiters == 0 {
			f.cancel()
			if g.m[key] == f {
				delete(g.m, key)
			}
		}
		g.mu.Unlock()
		return nil, false, ctx.Err()
	}
}

// withValues returns base, whose cancellation ends a load that several
// callers may share, carrying the values of ctx, the caller that started
// the load, before base's own: the fetcher then sees who asked (a trace,
// a reason for a request that metrics count by).
func withValues(base, ctx context.Context) context.Context {
	if ctx == base || ctx == nil {
		return base
	}
	return valuesOf{Context: base, values: ctx}
}

type valuesOf struct {
	context.Context
	values context.Context
}

func (c valuesOf) Value(key any) any {
	if v := c.values.Value(key); v != nil {
		return v
	}
	return c.Context.Value(key)
}
