package reader

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/toc"
	"golang.org/x/sync/semaphore"
)

// ErrNoCache is returned by Prefetch on a layer opened without WithCache:
// prefetched chunks would have nowhere to wait for their reads.
var ErrNoCache = errors.New("prefetch needs a cache")

// FileRange names bytes [Offset, Offset+Length) of the file at Name, a path
// as Open takes it; Length 0 means the whole file.
type FileRange struct {
	Name           string
	Offset, Length int64
}

// PrefetchProgress reports how far a Prefetch has come. Frames are the
// compressed units the layer's chunks are stored in; Bytes counts their
// compressed size.
type PrefetchProgress struct {
	Frames, FramesDone int
	Bytes, BytesDone   int64
	// Busy is the time spent decompressing and verifying the frames
	// done, summed over the goroutines that did it.
	Busy time.Duration
}

// A PrefetchOption configures Prefetch.
type PrefetchOption func(*prefetchConfig)

type prefetchConfig struct {
	requests int
	workers  int
	buffer   int64
	progress func(PrefetchProgress)
}

// DefaultPrefetchRequests is how many requests Prefetch keeps in flight
// unless WithPrefetchRequests says otherwise.
const DefaultPrefetchRequests = 4

// WithPrefetchRequests bounds the requests Prefetch keeps in flight;
// values below 1 mean 1.
func WithPrefetchRequests(n int) PrefetchOption {
	return func(c *prefetchConfig) { c.requests = max(n, 1) }
}

// DefaultPrefetchBuffer bounds the compressed bytes a Prefetch holds
// unless WithPrefetchBuffer says otherwise: 16 MiB, room for the
// requests in flight (DefaultPrefetchRequests of at most 2 MiB) and as
// much again of answers waiting to be decompressed.
const DefaultPrefetchBuffer = 16 << 20

// WithPrefetchBuffer bounds the compressed bytes that Prefetch has asked
// the fetcher for and not yet decompressed, verified and cached: those of
// its requests in flight, and of the answers waiting for a worker. A
// request goes out only once its bytes fit, and no request asks for more
// than n bytes, but for a single frame larger than n, which goes alone.
// Without the bound, a link faster than decompression would pile up a
// whole prefetch's answers in memory. Values <= 0 mean
// DefaultPrefetchBuffer.
func WithPrefetchBuffer(n int64) PrefetchOption {
	return func(c *prefetchConfig) {
		if n <= 0 {
			n = DefaultPrefetchBuffer
		}
		c.buffer = n
	}
}

// WithPrefetchWorkers bounds how many frames Prefetch decompresses and
// verifies at once; values below 1 mean 1. The default is GOMAXPROCS.
func WithPrefetchWorkers(n int) PrefetchOption {
	return func(c *prefetchConfig) { c.workers = max(n, 1) }
}

// WithPrefetchProgress makes Prefetch call fn once with the totals before
// it fetches anything, and again each time a frame is decompressed,
// verified and cached. Calls do not overlap.
func WithPrefetchProgress(fn func(PrefetchProgress)) PrefetchOption {
	return func(c *prefetchConfig) { c.progress = fn }
}

const (
	// The first request of a prefetch asks for firstBatch bytes, and each
	// next one for twice as much as the one before, up to maxBatch. Small
	// first answers let decompression start early; later requests are
	// issued while earlier ones still stream, so their round trips cost
	// no time, and their size keeps the number of requests small. When
	// the last answer arrives, at most maxBatch bytes are left to
	// decompress.
	firstBatch = 256 << 10
	maxBatch   = 2 << 20
)

// Prefetch is StartPrefetch followed by Wait.
func (l *Layer) Prefetch(ctx context.Context, ranges []FileRange, opts ...PrefetchOption) error {
	p, err := l.StartPrefetch(ctx, ranges, opts...)
	if err != nil {
		return err
	}
	return p.Wait()
}

// A Prefetching is a prefetch under way; see StartPrefetch.
type Prefetching struct {
	done chan struct{}
	err  error
}

// Wait waits for the prefetch to finish and returns nil when every chunk
// it fetched is cached, or the first error. A prefetch stopped by its
// context returns the context's error, one stopped by Close fs.ErrClosed.
func (p *Prefetching) Wait() error {
	<-p.done
	return p.err
}

// StartPrefetch starts fetching the chunks holding ranges into the layer's
// cache, the earlier ranges first. It fetches their frames in requests of
// growing size with a bounded number in flight (WithPrefetchRequests),
// each request a run of the frames adjacent in the blob, so that the
// fetcher merges nearby frames into few spans and no byte is read twice,
// and with the bytes asked for and not yet cached within a buffer
// (WithPrefetchBuffer); and it decompresses and verifies each answer's
// frames on a pool of workers, one per core (WithPrefetchWorkers), while
// later answers still arrive.
//
// StartPrefetch returns once the prefetch has claimed its frames: from
// then on, a read of a chunk whose frame it is fetching waits for that
// fetch instead of making its own, and is served as soon as the frame is
// verified. Other reads proceed as usual. Cancelling ctx stops the
// prefetch; reads waiting on one of its fetches then make their own.
//
// Chunks already in the cache, chunks of zeros and chunks without a digest
// are skipped; names that do not exist, or are not regular files, fail
// with an *fs.PathError before anything is fetched. A layer opened
// without WithCache fails with ErrNoCache.
func (l *Layer) StartPrefetch(ctx context.Context, ranges []FileRange, opts ...PrefetchOption) (*Prefetching, error) {
	cfg := prefetchConfig{requests: DefaultPrefetchRequests, workers: runtime.GOMAXPROCS(0), buffer: DefaultPrefetchBuffer}
	for _, o := range opts {
		o(&cfg)
	}
	if l.cfg.cache == nil {
		return nil, fmt.Errorf("reader: prefetch: %w", ErrNoCache)
	}
	// The prefetch is one task, until its last goroutine is done.
	if !l.tasks.add() {
		return nil, fs.ErrClosed
	}
	frames, err := l.prefetchFrames(ranges)
	if err != nil {
		l.tasks.done()
		return nil, err
	}
	run := &prefetchRun{
		layer: l, cfg: cfg, frames: frames, workers: make(chan struct{}, cfg.workers),
		buffer: semaphore.NewWeighted(cfg.buffer), held: make([]atomic.Int64, len(frames)),
	}
	for _, f := range frames {
		run.progress.Frames++
		run.progress.Bytes += f.frame.Length
	}
	if cfg.progress != nil {
		cfg.progress(run.progress)
	}
	p := &Prefetching{done: make(chan struct{})}
	if len(frames) == 0 {
		l.tasks.done()
		close(p.done)
		return p, nil
	}
	run.ctx, run.cancel = context.WithCancelCause(ctx)
	stop := context.AfterFunc(l.ctx, func() { run.cancel(fs.ErrClosed) })

	// Claim every frame before returning: a read from now on joins the
	// prefetch's load of its frame.
	// Frames that a read is already loading are not fetched again.
	run.slots = make([]*frameSlot, len(frames))
	loads := make([]*flight, len(frames))
	var fetch []int
	for i, f := range frames {
		run.slots[i] = &frameSlot{done: make(chan struct{})}
		var started bool
		loads[i], started = l.flights.join(withValues(l.ctx, run.ctx), f.frame.Offset, func(fctx context.Context) (frameResult, error) {
			return run.load(fctx, i)
		})
		if started {
			fetch = append(fetch, i)
		}
	}
	// The requests go out first; a goroutine per frame waiting for its
	// load takes a few milliseconds to start for thousands of frames.
	var wg sync.WaitGroup
	waiting := make(chan struct{})
	go func() {
		defer l.tasks.done()
		run.fetch(planBatches(frames, fetch, cfg.buffer))
		<-waiting
		wg.Wait()
		stop()
		p.err = context.Cause(run.ctx)
		run.cancel(nil)
		if p.err != nil && !errors.Is(p.err, fs.ErrClosed) {
			p.err = fmt.Errorf("reader: prefetch: %w", p.err)
		}
		close(p.done)
	}()
	for i, f := range frames {
		wg.Go(func() {
			res, _, err := l.flights.wait(run.ctx, f.frame.Offset, loads[i])
			run.finished(i, res, err)
		})
	}
	close(waiting)
	return p, nil
}

// prefetchRun is the state of one StartPrefetch.
type prefetchRun struct {
	layer  *Layer
	cfg    prefetchConfig
	frames []prefetchFrame
	slots  []*frameSlot // by frame, filled as answers arrive
	ctx    context.Context
	cancel context.CancelCauseFunc

	workers chan struct{} // bounds frames decompressed at once
	// buffer bounds the compressed bytes fetched or being fetched and
	// not yet decompressed and cached (WithPrefetchBuffer); held is
	// what each frame holds of it, from its request until its load is
	// done with its bytes.
	buffer *semaphore.Weighted
	held   []atomic.Int64

	mu       sync.Mutex
	progress PrefetchProgress
}

// load is the flight of frame i: it waits for the frame's bytes, then
// decompresses and verifies the frame's chunks on one of the workers.
func (run *prefetchRun) load(ctx context.Context, i int) (frameResult, error) {
	f := run.frames[i]
	src := run.layer.slotSource(run.ctx, run.slots[i])
	// Decompressed and cached, or failed, the frame's bytes are no
	// longer held: the next request may use their room.
	defer func() { run.buffer.Release(run.held[i].Swap(0)) }()
	ctx, w := withWorker(ctx, run.workers)
	res, err := run.layer.loadFrame(ctx, f.ref, true, func(ctx context.Context, r fetcher.Range) ([]byte, error) {
		data, err := src(ctx, r)
		if err != nil {
			return nil, err
		}
		if err := w.acquire(ctx); err != nil {
			return nil, err
		}
		return data, nil
	})
	if busy := w.release(); busy > 0 {
		run.mu.Lock()
		run.progress.Busy += busy
		run.mu.Unlock()
	}
	return res, err
}

// A worker is a slot of a pool that bounds the frames decompressed at
// once (WithPrefetchWorkers), held by one frame load from when the
// frame's bytes are there until it is decompressed. A load that then
// waits for another frame's load (a zTOC span's window is checked
// against the span before) gives its slot up first (yieldWorker): that
// load may need one.
type worker struct {
	pool chan struct{}

	mu    sync.Mutex
	since time.Time // when the slot was taken, zero when not held
	busy  time.Duration
}

type workerKey struct{}

// withWorker returns ctx carrying a worker of pool, not yet holding a
// slot.
func withWorker(ctx context.Context, pool chan struct{}) (context.Context, *worker) {
	w := &worker{pool: pool}
	return context.WithValue(ctx, workerKey{}, w), w
}

// acquire takes a slot, waiting for one.
func (w *worker) acquire(ctx context.Context) error {
	select {
	case w.pool <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.mu.Lock()
	w.since = time.Now()
	w.mu.Unlock()
	return nil
}

// release gives the slot up, if held, and returns how long it was held
// in all.
func (w *worker) release() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.since.IsZero() {
		<-w.pool
		w.busy += time.Since(w.since)
		w.since = time.Time{}
	}
	return w.busy
}

// yieldWorker gives up the worker slot the load of ctx holds, if any,
// before the load waits for another one.
func yieldWorker(ctx context.Context) {
	if w, ok := ctx.Value(workerKey{}).(*worker); ok {
		w.release()
	}
}

// finished records the outcome of frame i's load, which the prefetch
// waited for, and stops the prefetch at the first error.
func (run *prefetchRun) finished(i int, res frameResult, err error) {
	f := run.frames[i]
	l := run.layer
	if err == nil {
		c := l.chunk(f.ref)
		err = res[span{c.InnerOffset, c.Size, l.chunkDigest(f.ref)}].err
	}
	if err != nil {
		run.cancel(fmt.Errorf("entry %q: chunk %d: %w", untrusted.Short(l.idx.recs[f.ref.id].name), f.ref.index, err))
		return
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	run.progress.FramesDone++
	run.progress.BytesDone += f.frame.Length
	if run.cfg.progress != nil {
		run.cfg.progress(run.progress)
	}
}

// fetch issues the batches in order, with at most cfg.requests in
// flight and their bytes within cfg.buffer, and finally fails the slots
// of frames no answer delivered.
func (run *prefetchRun) fetch(batches []batch) {
	sem := make(chan struct{}, run.cfg.requests)
	var wg sync.WaitGroup
	for _, b := range batches {
		select {
		case sem <- struct{}{}:
		case <-run.ctx.Done():
		}
		if run.ctx.Err() != nil || run.hold(b) != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := run.layer.fetchBatch(run.ctx, b, run.frames, run.slots); err != nil {
				run.cancel(err)
			}
		})
	}
	wg.Wait()
	skipped := context.Cause(run.ctx)
	if skipped == nil {
		skipped = fmt.Errorf("fetcher skipped a range: %w", ErrCorrupt)
	}
	for _, s := range run.slots {
		s.fill(nil, skipped)
	}
}

// hold waits until the bytes of batch b fit in the buffer, or the whole
// buffer is free for a frame larger than it, and charges each frame of b
// with its share until its load is done with it.
func (run *prefetchRun) hold(b batch) error {
	var size int64
	for _, i := range b {
		size += run.frames[i].frame.Length
	}
	size = min(size, run.cfg.buffer)
	if err := run.buffer.Acquire(run.ctx, size); err != nil {
		return err
	}
	for _, i := range b {
		share := min(run.frames[i].frame.Length, size)
		run.held[i].Store(share)
		size -= share
	}
	return nil
}

// prefetchFrame is one frame a Prefetch fetches, and a chunk it holds.
type prefetchFrame struct {
	ref   chunkRef
	frame fetcher.Range
}

// prefetchFrames lists the frames that hold the chunks of ranges and are
// not cached yet, each once, in the order of the first range that needs
// it.
func (l *Layer) prefetchFrames(ranges []FileRange) ([]prefetchFrame, error) {
	var frames []prefetchFrame
	seen := make(map[int64]bool)
	for _, fr := range ranges {
		id, err := l.contentID(fr.Name)
		if err != nil {
			return nil, &fs.PathError{Op: "prefetch", Path: fr.Name, Err: err}
		}
		if fr.Offset < 0 || fr.Length < 0 {
			return nil, &fs.PathError{Op: "prefetch", Path: fr.Name, Err: fs.ErrInvalid}
		}
		e := l.entry(id)
		end := fr.Offset + fr.Length
		for i := range e.Chunks {
			c := &e.Chunks[i]
			if c.Zeros || c.Size == 0 || seen[c.FrameOffset] || !l.verifiable(e, i) {
				continue
			}
			if fr.Length > 0 && (c.Offset+c.Size <= fr.Offset || c.Offset >= end) {
				continue
			}
			if l.cacheHas(e, i) {
				continue
			}
			seen[c.FrameOffset] = true
			frames = append(frames, prefetchFrame{
				ref:   chunkRef{id, int32(i)},
				frame: fetcher.Range{Offset: c.FrameOffset, Length: c.FrameEnd - c.FrameOffset},
			})
		}
	}
	return frames, nil
}

// ContentEntry returns the index entry whose content the regular file at
// name shows, following symbolic and hard links: the entry whose Chunks a
// read of name fetches. Names that do not exist fail with fs.ErrNotExist,
// names of anything but a regular file with fs.ErrInvalid. The caller must
// not modify the entry.
func (l *Layer) ContentEntry(name string) (*toc.Entry, error) {
	id, err := l.contentID(name)
	if err != nil {
		return nil, err
	}
	return l.entry(id), nil
}

// contentID is ContentEntry, returning the entry's record.
func (l *Layer) contentID(name string) (int32, error) {
	if !fs.ValidPath(name) {
		return 0, fs.ErrInvalid
	}
	n, err := l.lookup(name, true)
	if err != nil {
		return 0, err
	}
	if n.linkErr() != nil {
		return 0, n.linkErr()
	}
	if n.content() == implied || l.contentType(n) != toc.TypeReg {
		return 0, fmt.Errorf("not a regular file: %w", fs.ErrInvalid)
	}
	return n.content(), nil
}

// A batch is what one Fetch of a Prefetch asks for: frames, by index into
// the Prefetch's frames. Each frame is a range of its own, so the fetcher
// hands it over as soon as its bytes are in, while it merges neighbouring
// frames into spans of one request by its own policy.
type batch []int

// planBatches cuts the frames that order lists, most urgent first, into
// the fetches of a Prefetch: batches of growing size (see firstBatch),
// each a run of the frames adjacent in blob order. A fetcher merges
// frames a small gap apart into one span and reads the gap; were a batch
// not such a run, a gap it reads could hold a frame of another batch,
// fetched twice. Each batch starts at the most urgent frame left and
// grows towards the more urgent of its two neighbours, and never past
// limit bytes, unless its first frame alone is larger.
func planBatches(frames []prefetchFrame, order []int, limit int64) []batch {
	byOffset := slices.Clone(order)
	slices.SortFunc(byOffset, func(a, b int) int { return cmp.Compare(frames[a].frame.Offset, frames[b].frame.Offset) })
	// at[i] is frame i's place in byOffset; urgency[k] is byOffset[k]'s
	// place in order.
	at := make(map[int]int, len(order))
	for k, i := range byOffset {
		at[i] = k
	}
	urgency := make([]int, len(order))
	for u, i := range order {
		urgency[at[i]] = u
	}
	taken := make([]bool, len(order))
	var batches []batch
	target := min(firstBatch, limit)
	for _, i := range order {
		lo := at[i]
		if taken[lo] {
			continue
		}
		hi, size := lo+1, frames[i].frame.Length
		taken[lo] = true
		for size < target {
			left := lo > 0 && !taken[lo-1] && size+frames[byOffset[lo-1]].frame.Length <= limit
			right := hi < len(order) && !taken[hi] && size+frames[byOffset[hi]].frame.Length <= limit
			if left && (!right || urgency[lo-1] < urgency[hi]) {
				lo--
				taken[lo] = true
				size += frames[byOffset[lo]].frame.Length
			} else if right {
				taken[hi] = true
				size += frames[byOffset[hi]].frame.Length
				hi++
			} else {
				break
			}
		}
		batches = append(batches, batch(byOffset[lo:hi:hi]))
		target = min(2*target, maxBatch, limit)
	}
	return batches
}

// fetchBatch fetches one batch and hands each frame's bytes to its slot.
func (l *Layer) fetchBatch(ctx context.Context, b batch, frames []prefetchFrame, slots []*frameSlot) error {
	ranges := make([]fetcher.Range, len(b))
	byOffset := make(map[int64]int, len(b))
	for k, i := range b {
		ranges[k] = frames[i].frame
		byOffset[ranges[k].Offset] = i
	}
	return l.fetcher.Fetch(ctx, ranges, func(r fetcher.Range, data []byte) error {
		i, ok := byOffset[r.Offset]
		if !ok || frames[i].frame != r || int64(len(data)) != r.Length {
			return fmt.Errorf("fetcher returned %d bytes at %d, not a requested range: %w", len(data), r.Offset, ErrCorrupt)
		}
		slots[i].fill(data[:len(data):len(data)], nil)
		return nil
	})
}

// slotSource is a frameSource that waits for a Prefetch to fill slot, for
// the one load of its frame. When
// the Prefetch stopped (its context pctx is done) but the load still has
// a reader waiting (its own ctx is not), it fetches the frame itself.
func (l *Layer) slotSource(pctx context.Context, slot *frameSlot) frameSource {
	return func(ctx context.Context, frame fetcher.Range) ([]byte, error) {
		select {
		case <-slot.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if slot.err != nil {
			if pctx.Err() != nil && ctx.Err() == nil {
				return l.fetchFrame(ctx, frame)
			}
			return nil, slot.err
		}
		// The frame's one load takes its bytes: the Prefetch, which
		// keeps its slots to the end, must not keep them too.
		data := slot.data
		slot.data = nil
		if int64(len(data)) != frame.Length {
			return nil, fmt.Errorf("frame %v planned as %d bytes: %w", frame, len(data), ErrCorrupt)
		}
		return data, nil
	}
}
