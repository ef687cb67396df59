package reader

import (
	"context"
	"sync"
	"time"

	"github.com/lazylayer/lazylayer/toc"
)

// An Access reports the first read of one chunk of a file through a Layer.
// The sequence of accesses is a trace of what a workload needs, in the
// order it asked: the raw material of a prefetch profile.
type Access struct {
	// Seq numbers first accesses in the order they were requested,
	// from 0.
	Seq int64
	// Entry is the file whose content was read (for a hard link, its
	// target) and Chunk the index of the chunk in Entry.Chunks.
	Entry *toc.Entry
	Chunk int
	// Start is when the read asked for the chunk; Duration is how long
	// it took until the verified bytes, or an error, were available.
	Start    time.Time
	Duration time.Duration
	// Err is the error the read got, if any.
	Err error
}

// WithAccessObserver makes the layer call fn once for the first read of
// each chunk, after that read completes. Reads of different chunks may
// call fn concurrently, so calls can arrive out of Seq order; fn must be
// safe for concurrent use and return quickly, as the reader waits for it.
func WithAccessObserver(fn func(Access)) Option {
	return func(c *config) { c.observer = fn }
}

// unobservedKey marks a context whose reads are not reported; see
// Unobserved.
type unobservedKey struct{}

// Unobserved returns a copy of ctx under which reads (ReadAtContext) are
// not reported to the layer's access observer (WithAccessObserver) and do
// not count as a chunk's first read. A planner that reads files of an
// image to decide what to prefetch passes it: its reads are not the
// workload's, which the observer profiles, and the workload's own first
// read of those chunks is still reported.
func Unobserved(ctx context.Context) context.Context {
	return context.WithValue(ctx, unobservedKey{}, true)
}

// accessLog remembers which chunks were read, for WithAccessObserver.
type accessLog struct {
	mu   sync.Mutex
	seen map[*toc.Chunk]bool
	next int64
}

// first reports whether c was never asked for before, and its number.
func (a *accessLog) first(c *toc.Chunk) (seq int64, first bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen[c] {
		return 0, false
	}
	if a.seen == nil {
		a.seen = make(map[*toc.Chunk]bool)
	}
	a.seen[c] = true
	seq = a.next
	a.next++
	return seq, true
}

// chunkData is loadChunk for a read: it reports first accesses to the
// configured observer, and counts the load as foreground, so that a
// background fetch (FetchAll) waits for it. Reads of file content call it,
// or take chunks their file loaded ahead (see readAhead).
func (l *Layer) chunkData(ctx context.Context, ref chunkRef, src frameSource) ([]byte, bool, error) {
	done := l.observe(ctx, l.entry(ref.id), int(ref.index))
	l.foreground.Add(1)
	data, exclusive, err := l.loadChunk(ctx, ref, src)
	l.foreground.Add(-1)
	done(err)
	return data, exclusive, err
}

// zeroChunk is chunkData for a chunk of zeros, which reads serve from
// zeroPage rather than build: the index says what its bytes are, and
// checkZeros that its digest, if any, agrees.
func (l *Layer) zeroChunk(ctx context.Context, e *toc.Entry, i int) error {
	done := l.observe(ctx, e, i)
	err := l.checkZeros(ctx, chunkDigest(e, i), e.Chunks[i].Size)
	done(err)
	return err
}

// observe notes a read of e.Chunks[i] starting now under ctx; the
// function it returns reports the read's outcome to the observer if it
// was the chunk's first.
func (l *Layer) observe(ctx context.Context, e *toc.Entry, i int) func(error) {
	if l.cfg.observer == nil || ctx.Value(unobservedKey{}) != nil {
		return func(error) {}
	}
	seq, first := l.accesses.first(&e.Chunks[i])
	if !first {
		return func(error) {}
	}
	start := time.Now()
	return func(err error) {
		l.cfg.observer(Access{Seq: seq, Entry: e, Chunk: i, Start: start, Duration: time.Since(start), Err: err})
	}
}
