package reader

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

const (
	// backgroundBatch is how many compressed bytes one request of FetchAll
	// asks for: large enough that requests are few, small enough that a
	// read arriving meanwhile waits for little more than its own fetch.
	backgroundBatch = 4 << 20
	// idlePoll is how often a paused FetchAll checks whether reads are
	// still loading chunks.
	idlePoll = 2 * time.Millisecond
)

// WithBackgroundFetch makes Open start FetchAll as soon as the layer is
// open, so that the whole layer ends up in the cache while a workload
// already reads it lazily: once it is done, reads no longer need the
// registry. done, if not nil, is called with FetchAll's result. Close
// stops the fetch (done then gets fs.ErrClosed) and returns after done
// did. It needs WithCache: without one, done gets ErrNoCache and nothing
// is fetched.
func WithBackgroundFetch(done func(error)) Option {
	return func(c *config) {
		if done == nil {
			done = func(error) {}
		}
		c.background = done
	}
}

// startBackground runs FetchAll for WithBackgroundFetch.
func (l *Layer) startBackground() {
	if l.cfg.background == nil {
		return
	}
	l.goTask(func() { l.cfg.background(l.FetchAll(l.ctx)) })
}

// A FetchAllOption configures FetchAll.
type FetchAllOption func(*fetchAllConfig)

type fetchAllConfig struct {
	gate func(ctx context.Context, size int64) error
}

// WithFetchGate makes FetchAll call gate before each of its requests,
// with the compressed bytes the request is to ask for, and make the
// request only once gate has returned nil; an error of gate stops
// FetchAll with that error. A caller whose layers share a link uses it to
// hold the background fetch while reads of any layer wait for the link,
// or to pace it. FetchAll claims the request's chunks only once gate has
// returned, so that reads of them meanwhile make their own fetches
// rather than wait for it.
func WithFetchGate(gate func(ctx context.Context, size int64) error) FetchAllOption {
	return func(c *fetchAllConfig) { c.gate = gate }
}

// FetchAll fetches every chunk of the layer that the cache lacks into the
// cache, in blob order, and returns when all of them are cached, at the
// first error, when ctx is done, or when the layer is closed (with
// fs.ErrClosed). It needs a cache (WithCache), and returns ErrNoCache
// without one.
//
// FetchAll runs at low priority: it asks for a few MiB per request and,
// before each request, waits until no read of the layer is loading a
// chunk, and for the gate of WithFetchGate, if any. Reads of chunks
// FetchAll is fetching wait for that fetch instead of making their own.
func (l *Layer) FetchAll(ctx context.Context, opts ...FetchAllOption) error {
	var cfg fetchAllConfig
	for _, o := range opts {
		o(&cfg)
	}
	if l.cfg.cache == nil {
		return fmt.Errorf("reader: fetch all: %w", ErrNoCache)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(l.ctx, func() { cancel(fs.ErrClosed) })
	defer stop()
	if l.blob.verify() == verifySpans {
		if err := l.wholeLayer(ctx, io.Discard, &cfg); err != nil {
			return l.backgroundErr(ctx, err)
		}
		return nil
	}
	frames := l.blobFrames()
	for start := 0; start < len(frames); {
		if err := l.waitIdle(ctx); err != nil {
			return l.backgroundErr(ctx, err)
		}
		var batch []chunkRef
		var size int64
		for ; start < len(frames) && size < backgroundBatch; start++ {
			if ref := frames[start]; !l.cacheHas(l.entry(ref.id), int(ref.index)) {
				batch = append(batch, ref)
				size += l.chunk(ref).FrameEnd - l.chunk(ref).FrameOffset
			}
		}
		if cfg.gate != nil && len(batch) > 0 {
			if err := cfg.gate(ctx, size); err != nil {
				return l.backgroundErr(ctx, err)
			}
			// Reads may have loaded chunks of the batch meanwhile.
			if err := l.waitIdle(ctx); err != nil {
				return l.backgroundErr(ctx, err)
			}
			batch = slices.DeleteFunc(batch, func(ref chunkRef) bool { return l.cacheHas(l.entry(ref.id), int(ref.index)) })
		}
		ranges := make([]fetcher.Range, len(batch))
		for k, ref := range batch {
			c := l.chunk(ref)
			ranges[k] = fetcher.Range{Offset: c.FrameOffset, Length: c.FrameEnd - c.FrameOffset}
		}
		if err := l.loadBatch(ctx, batch, ranges); err != nil {
			return l.backgroundErr(ctx, err)
		}
	}
	return nil
}

// backgroundErr reports why FetchAll stopped: fs.ErrClosed if the layer
// was closed, its context's cause if it was cancelled, err otherwise.
func (l *Layer) backgroundErr(ctx context.Context, err error) error {
	if l.ctx.Err() != nil {
		return fs.ErrClosed
	}
	if cause := context.Cause(ctx); cause != nil {
		err = cause
	}
	return fmt.Errorf("reader: background fetch: %w", err)
}

// CacheKeys returns the keys under which the layer keeps its chunks in
// the cache of WithCache: the digest of every chunk of file content that
// has one, each once. A caller that shares one cache between layers can
// tell from them which entries a layer it drops leaves to no other.
func (l *Layer) CacheKeys() []digest.Digest {
	if l.blob.verify() == verifySpans {
		return l.spans.keys()
	}
	var keys []digest.Digest
	seen := make(map[digest.Digest]bool)
	for ref := range l.cachedChunks() {
		if d := l.chunkDigest(ref); !seen[d] {
			seen[d] = true
			keys = append(keys, d)
		}
	}
	return keys
}

// cachedChunks yields every chunk of file content that a load verifies
// and caches: not empty, not known zeros, and with a digest.
func (l *Layer) cachedChunks() iter.Seq2[chunkRef, *chunkRecord] {
	return func(yield func(chunkRef, *chunkRecord) bool) {
		for id := range l.idx.recs {
			rec := &l.idx.recs[id]
			if rec.typ != toc.TypeReg {
				continue
			}
			for i := range int32(rec.nchunk) {
				ref := chunkRef{int32(id), i}
				c := l.idx.chunkRecord(ref)
				if c.zeros || c.size == 0 || !l.idx.hasChunkDigest(ref) {
					continue
				}
				if !yield(ref, c) {
					return
				}
			}
		}
	}
}

// blobFrames returns one chunk of every frame that holds verifiable file
// content, ordered by the frame's place in the blob.
func (l *Layer) blobFrames() []chunkRef {
	var refs []chunkRef
	seen := make(map[int64]bool)
	for ref, c := range l.cachedChunks() {
		if !seen[c.frameOffset] {
			seen[c.frameOffset] = true
			refs = append(refs, ref)
		}
	}
	slices.SortFunc(refs, func(a, b chunkRef) int {
		return cmp.Compare(l.idx.chunkRecord(a).frameOffset, l.idx.chunkRecord(b).frameOffset)
	})
	return refs
}

// loadBatch loads the chunks of batch, whose frames are ranges, with one
// Fetch. Loading a chunk caches every chunk of its frame. Unless it fails,
// it returns only once that Fetch has returned too, so that the requests
// of a FetchAll that returned nil are over, and observed.
func (l *Layer) loadBatch(ctx context.Context, batch []chunkRef, ranges []fetcher.Range) error {
	if len(batch) == 0 {
		return nil
	}
	b := l.newFrameBatch(ctx, ranges)
	src := b.get
	errs := make([]error, len(batch))
	sem := make(chan struct{}, l.cfg.concurrency)
	var wg sync.WaitGroup
	for k, ref := range batch {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, _, err := l.loadChunk(ctx, ref, src); err != nil {
				errs[k] = fmt.Errorf("entry %q: chunk %d: %w", untrusted.Short(l.idx.recs[ref.id].name), ref.index, err)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	// Every frame arrived; the Fetch may still be finishing its request.
	b.wait()
	return nil
}

// waitIdle returns once no read is loading a chunk, or ctx is done.
func (l *Layer) waitIdle(ctx context.Context) error {
	if l.foreground.Load() == 0 {
		return ctx.Err()
	}
	tick := time.NewTicker(idlePoll)
	defer tick.Stop()
	for l.foreground.Load() > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
