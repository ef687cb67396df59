package reader

import (
	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
)

const (
	// maxAheadChunks and maxAheadBytes bound one read-ahead window: the
	// window starts at one chunk and doubles each time a sequential
	// reader has less than half a window loading ahead of it, up to this
	// many chunks or bytes (always at least one chunk). 16 MiB takes a
	// few tens of milliseconds on a fast link, about what a round trip
	// costs. A file holds at most one and a half windows of chunks read
	// ahead and not yet read.
	maxAheadChunks = 16
	maxAheadBytes  = 16 << 20
)

// readAhead is a file's sequential read-ahead state. A read that starts
// where the previous one ended is sequential; such reads keep the chunks
// after them loading, so that a file streamed from start to end costs a
// handful of requests rather than one per chunk. Any other read resets
// the state: random access never fetches what it did not ask for.
type readAhead struct {
	reads  int64 // reads so far, to tell the first read from a sequential one
	next   int64 // file offset where the previous read ended
	window int   // chunks the last read-ahead asked for; 0 before any
	issued int   // chunks below this index were loaded ahead, or read
	// loads holds chunks loaded ahead and not read yet, by index.
	loads map[int]*aheadLoad
}

// aheadLoad is one chunk loading ahead of the reader.
type aheadLoad struct {
	index int
	done  chan struct{}
	data  []byte
	err   error
}

// planAhead notes a read of file bytes [off, end), which touches chunks
// first to last, and returns the chunks to load ahead of it, already
// registered as loading. The caller fetches them in the same request as
// the read's own missing chunks, and hands each to loadAhead.
func (f *file) planAhead(off, end int64, first, last int) []*aheadLoad {
	f.mu.Lock()
	defer f.mu.Unlock()
	ra := &f.ahead
	sequential := ra.reads > 0 && off == ra.next
	ra.reads++
	ra.next = end
	if !sequential {
		ra.window, ra.issued = 0, 0
		clear(ra.loads)
		return nil
	}
	chunks := f.entry.Chunks
	from := max(ra.issued, last+1)
	if from >= len(chunks) || ra.window > 0 && from-(last+1) >= (ra.window+1)/2 {
		return nil // the file's end, or enough is loading already
	}
	ra.window = min(max(2*ra.window, 1), maxAheadChunks)
	to := min(from+ra.window, len(chunks))
	var ahead []*aheadLoad
	var bytes int64
	i := from
	for ; i < to && (len(ahead) == 0 || bytes+chunks[i].Size <= maxAheadBytes); i++ {
		c := &chunks[i]
		// A cached chunk is planned too: looking it up here, under the
		// lock and on the reader's path, could cost a disk read, while
		// loadAhead looks in the cache first and fetches nothing then.
		if c.Zeros || c.Size == 0 || !f.layer.verifiable(f.entry, i) {
			continue // costs no request, or cannot be verified
		}
		if ra.loads == nil {
			ra.loads = make(map[int]*aheadLoad)
		}
		load := &aheadLoad{index: i, done: make(chan struct{})}
		ra.loads[i] = load
		ahead = append(ahead, load)
		bytes += c.Size
	}
	ra.issued = i
	return ahead
}

// loadAhead loads a chunk planned by planAhead through src. It is not a
// read: the observer hears of the chunk when a read takes it.
func (f *file) loadAhead(load *aheadLoad, src frameSource) {
	f.layer.foreground.Add(1)
	load.data, _, load.err = f.layer.loadChunk(f.layer.ctx, chunkRef{f.id, int32(load.index)}, src)
	f.layer.foreground.Add(-1)
	close(load.done)
}

// takeAhead removes and returns the read-ahead load of chunk i, if any.
// The caller holds f.mu.
func (f *file) takeAhead(i int) *aheadLoad {
	load := f.ahead.loads[i]
	if load != nil {
		delete(f.ahead.loads, i)
	}
	return load
}

// loadingAhead reports whether chunk i is loaded ahead or kept as the
// last chunk read, so that a read needs not fetch its frame.
func (f *file) loadingAhead(i int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ahead.loads[i] != nil || f.last.data != nil && f.last.index == i
}

// cacheHas reports whether the cache holds e.Chunks[i], without
// verifying it: a read verifies what it takes.
func (l *Layer) cacheHas(e *toc.Entry, i int) bool {
	if l.blob.verify() == verifySpans {
		k := l.spans.find(e.Chunks[i].FrameOffset)
		return k >= 0 && l.spanCached(&l.spans.spans[k])
	}
	if l.cfg.cache == nil {
		return false
	}
	d := chunkDigest(e, i)
	if d == "" {
		return false
	}
	return cache.Has(l.cfg.cache, d)
}

// aheadFrames returns the frames of the chunks of loads.
func (f *file) aheadFrames(loads []*aheadLoad) []fetcher.Range {
	frames := make([]fetcher.Range, 0, len(loads))
	for _, load := range loads {
		c := &f.entry.Chunks[load.index]
		frames = append(frames, fetcher.Range{Offset: c.FrameOffset, Length: c.FrameEnd - c.FrameOffset})
	}
	return frames
}

// verifiable reports whether a load can verify e.Chunks[i]: it has a
// digest, or lies in a span, which has one.
func (l *Layer) verifiable(e *toc.Entry, i int) bool {
	return chunkDigest(e, i) != "" || l.blob.verify() == verifySpans
}
