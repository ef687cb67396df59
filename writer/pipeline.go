package writer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// frameEncoder compresses one member of the blob (a gzip member for
// eStargz) on its own, so that members can be compressed in parallel and
// the output does not depend on which worker did which. Each worker owns
// one encoder.
type frameEncoder interface {
	// encode appends the compressed form of src to dst.
	encode(dst, src []byte) ([]byte, error)
}

// gzipEncoder compresses members at its level, except that members of
// at most smallMember bytes get level 6's encoder when the level is
// higher. Levels 7 to 9 are lazy-matching encoders that clear 640 KB of
// hash tables for every member, about 10µs: most of the cost of a member
// that small (a file of up to 512 bytes and the next entry's header),
// for which lazy matching finds almost nothing more. On a GOROOT tar that
// is a quarter of the members; it saves 1.7% of the compression time for
// 2.8 KB more in a 74 MB blob.
type gzipEncoder struct {
	zw, small *gzip.Writer
	out       appendWriter
}

const smallMember = 1 << 10

func newGzipEncoder(level int) (frameEncoder, error) {
	zw, err := gzip.NewWriterLevel(nil, level)
	if err != nil {
		return nil, err
	}
	small := zw
	if level > 6 {
		if small, err = gzip.NewWriterLevel(nil, 6); err != nil {
			return nil, err
		}
	}
	return &gzipEncoder{zw: zw, small: small}, nil
}

func (g *gzipEncoder) encode(dst, src []byte) ([]byte, error) {
	zw := g.zw
	if len(src) <= smallMember {
		zw = g.small
	}
	g.out = appendWriter(dst)
	zw.Reset(&g.out)
	_, err := zw.Write(src)
	if err == nil {
		err = zw.Close()
	}
	dst, g.out = g.out, nil
	return dst, err
}

// appendWriter is an io.Writer that appends to a slice.
type appendWriter []byte

func (w *appendWriter) Write(p []byte) (int, error) {
	*w = append(*w, p...)
	return len(p), nil
}

// member is one compression unit on its way through the pipeline.
type member struct {
	raw []byte // uncompressed bytes, filled by the producer
	// chunks are the spans of raw holding chunks of file content, in
	// order; the worker digests them, so that the producer, the one
	// goroutine reading the input, does not.
	chunks  []span
	digests [][32]byte // sha256 of chunks, set by the worker
	out     []byte     // raw compressed, set by the worker
	err     error
	done    chan struct{} // closed once out, digests and err are set
}

// keptBuffer is the largest buffer an idle member keeps; larger ones go
// back to the pipeline's spares.
const keptBuffer = 256 << 10

// span is the part of a member's raw bytes at [off, off+n).
type span struct{ off, n int }

// compress fills in m's compressed form and the digests of its chunks.
func (m *member) compress(enc frameEncoder, spares *spareBuffers) error {
	for _, c := range m.chunks {
		m.digests = append(m.digests, sha256.Sum256(m.raw[c.off:c.off+c.n]))
	}
	// Compressed output seldom outgrows its input by more than a little
	// framing: a buffer that size saves growing out step by step. (An
	// idle member's out is never larger than keptBuffer; see reset.)
	if need := len(m.raw) + len(m.raw)/64 + 1024; need > keptBuffer {
		m.out = spares.get(need)
	}
	var err error
	m.out, err = enc.encode(m.out[:0], m.raw)
	return err
}

// reset empties m for reuse, handing large buffers to spares.
func (m *member) reset(spares *spareBuffers) {
	// A member keeps its buffers for the next use unless they grew large:
	// many members exist, and only the byte budget bounds what is in
	// flight, not what idle members hold.
	if cap(m.raw) > keptBuffer {
		spares.put(m.raw)
		m.raw = nil
	}
	if cap(m.out) > keptBuffer {
		spares.put(m.out)
		m.out = nil
	}
	m.raw = m.raw[:0]
	m.chunks = m.chunks[:0]
	m.digests = m.digests[:0]
	m.out = m.out[:0]
}

// spareBuffers keeps the large buffers that members gave up, so that the
// next large member reuses one instead of allocating (and zeroing) it
// again: layers are full of multi-megabyte chunks. Large buffers are
// allocated in sizes rounded up to spareUnit, which lets a member's raw
// and compressed buffers serve each other's next use. It holds at most
// limit bytes; it is safe for concurrent use.
type spareBuffers struct {
	mu    sync.Mutex
	bufs  [][]byte
	bytes int
	limit int
}

const spareUnit = 512 << 10

// get returns an empty buffer with room for n bytes: the smallest spare
// that fits, or a new one.
func (s *spareBuffers) get(n int) []byte {
	s.mu.Lock()
	best := -1
	for i, b := range s.bufs {
		if cap(b) >= n && (best < 0 || cap(b) < cap(s.bufs[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := s.bufs[best]
		s.bufs = slices.Delete(s.bufs, best, best+1)
		s.bytes -= cap(b)
		s.mu.Unlock()
		return b[:0]
	}
	s.mu.Unlock()
	return make([]byte, 0, (n+spareUnit-1)/spareUnit*spareUnit)
}

// put keeps b for reuse, dropping the smallest spares when the limit is
// passed.
func (s *spareBuffers) put(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bufs = append(s.bufs, b[:0])
	s.bytes += cap(b)
	for s.bytes > s.limit {
		i := 0
		for j, b := range s.bufs {
			if cap(b) < cap(s.bufs[i]) {
				i = j
			}
		}
		s.bytes -= cap(s.bufs[i])
		s.bufs = slices.Delete(s.bufs, i, i+1)
	}
}

// grow returns raw with room for n more bytes, moving to a spare buffer
// when raw has to grow past keptBuffer.
func (s *spareBuffers) grow(raw []byte, n int) []byte {
	need := len(raw) + n
	switch {
	case need <= cap(raw):
		return raw
	case need <= keptBuffer:
		return slices.Grow(raw, n)
	}
	b := append(s.get(need), raw...)
	if cap(raw) > keptBuffer {
		s.put(raw)
	}
	return b
}

// blobSink is where compressed bytes go: the caller's writer, plus the
// blob's digest and size and the DiffID over the uncompressed bytes.
type blobSink struct {
	w                *bufio.Writer
	size             int64
	blob             hash.Hash
	diffID           hash.Hash
	uncompressedSize int64
}

func newBlobSink(w io.Writer) *blobSink {
	return &blobSink{w: bufio.NewWriterSize(w, 256<<10), blob: sha256.New(), diffID: sha256.New()}
}

// finish flushes the blob and records in res what every format reports:
// the blob's digest and size, the DiffID and uncompressed size, the TOC,
// and the format's annotations plus the position of the index, which
// starts at blob offset indexOffset and runs to the end.
func (s *blobSink) finish(res *Result, t *toc.TOC, x *index, indexOffset int64, annotations map[string]string) error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	res.Digest = digest.NewDigest(digest.SHA256, s.blob)
	res.Size = s.size
	res.MediaType = formats[t.Format].mediaType()
	res.DiffID = digest.NewDigest(digest.SHA256, s.diffID)
	res.UncompressedSize = s.uncompressedSize
	res.TOCDigest = t.Digest
	res.toc, res.index = *t, x
	res.Annotations = annotations
	maps.Copy(res.Annotations, toc.IndexPositionAnnotations(indexOffset, s.size))
	return nil
}

// write appends one compressed member, whose uncompressed form is raw.
func (s *blobSink) write(compressed, raw []byte) error {
	s.raw().Write(raw)
	_, err := s.compressed().Write(compressed)
	return err
}

// compressed returns a writer that appends compressed bytes to the blob.
func (s *blobSink) compressed() io.Writer { return (*sinkCompressed)(s) }

// raw returns a writer that takes the uncompressed form of what is
// written to compressed, for the DiffID.
func (s *blobSink) raw() io.Writer { return (*sinkRaw)(s) }

type (
	sinkCompressed blobSink
	sinkRaw        blobSink
)

func (s *sinkCompressed) Write(p []byte) (int, error) {
	s.blob.Write(p)
	n, err := s.w.Write(p)
	s.size += int64(n)
	return n, err
}

func (s *sinkRaw) Write(p []byte) (int, error) {
	s.diffID.Write(p)
	s.uncompressedSize += int64(len(p))
	return len(p), nil
}

// pipeline compresses members on concurrency workers and writes them to
// the sink in submission order. Memory stays bounded whatever the layer
// size: the uncompressed bytes in flight never pass a budget (the producer
// waits in submit), and a fixed number of members exist (it waits in
// acquire). The budget is in bytes, not members, because a layer's members
// range from a few hundred bytes to a whole chunk: with a count, one large
// member being compressed held up the output while the small ones behind it
// used up every member, and a worker sat idle.
type pipeline struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	free   chan *member
	work   chan *member
	order  chan *member

	spares   spareBuffers
	workers  sync.WaitGroup
	sinkDone chan struct{}
	sink     *blobSink
	// offsets[i] is the blob offset of member i, and sums the digests
	// of the members' chunks in submission order; owned by the sink
	// goroutine until close returns.
	offsets paged[int64]
	sums    paged[[32]byte]
	err     error // first sink or encoder error, set by the sink goroutine
	closed  bool

	mu            sync.Mutex
	drained       *sync.Cond // signalled when the sink has written a member
	inFlightBytes int        // uncompressed bytes submitted and not yet written
	budget        int
}

// startPipeline starts concurrency workers; memberLimit is the largest
// member the producer fills.
func startPipeline(ctx context.Context, sink *blobSink, concurrency, memberLimit int, newEncoder func() (frameEncoder, error)) (*pipeline, error) {
	encoders := make([]frameEncoder, concurrency)
	for i := range encoders {
		enc, err := newEncoder()
		if err != nil {
			return nil, err
		}
		encoders[i] = enc
	}
	// Bytes enough for every worker to have a full member in hand and one
	// queued, plus the one the producer is filling; members enough for
	// many small ones to flow past a large one.
	inFlight := 8*concurrency + 1
	p := &pipeline{
		free:     make(chan *member, inFlight),
		work:     make(chan *member, inFlight),
		order:    make(chan *member, inFlight),
		sinkDone: make(chan struct{}),
		sink:     sink,
		budget:   (2*concurrency + 1) * memberLimit,
	}
	// Spares hold no more than a pipeline full of large members holds:
	// a raw and a compressed buffer for each budgeted byte.
	p.spares.limit = 2 * p.budget
	p.drained = sync.NewCond(&p.mu)
	p.ctx, p.cancel = context.WithCancelCause(ctx)
	for range inFlight {
		p.free <- new(member)
	}
	for _, enc := range encoders {
		p.workers.Go(func() {
			for m := range p.work {
				m.err = m.compress(enc, &p.spares)
				close(m.done)
			}
		})
	}
	go p.drainInOrder()
	return p, nil
}

func (p *pipeline) drainInOrder() {
	defer close(p.sinkDone)
	for m := range p.order {
		<-m.done
		if p.err == nil {
			p.err = m.err
			if p.err == nil {
				p.offsets.add(p.sink.size)
				for _, sum := range m.digests {
					p.sums.add(sum)
				}
				p.err = p.sink.write(m.out, m.raw)
			}
			if p.err != nil {
				p.cancel(p.err)
			}
		}
		p.mu.Lock()
		p.inFlightBytes -= len(m.raw)
		p.drained.Broadcast()
		p.mu.Unlock()
		m.reset(&p.spares)
		p.free <- m
	}
}

// acquire returns an empty member to fill, waiting while all are in flight.
func (p *pipeline) acquire() (*member, error) {
	if err := context.Cause(p.ctx); err != nil {
		return nil, err
	}
	select {
	case m := <-p.free:
		return m, nil
	case <-p.ctx.Done():
		return nil, context.Cause(p.ctx)
	}
}

// submit queues a filled member for compression and output, first
// waiting while the bytes in flight would pass the budget. The channels
// hold every member that exists, so queueing never blocks; the sink keeps
// draining even after an error, so the wait always ends.
func (p *pipeline) submit(m *member) {
	p.mu.Lock()
	for p.inFlightBytes > 0 && p.inFlightBytes+len(m.raw) > p.budget {
		p.drained.Wait()
	}
	p.inFlightBytes += len(m.raw)
	p.mu.Unlock()
	m.done = make(chan struct{})
	p.order <- m
	p.work <- m
}

// release returns an unused member.
func (p *pipeline) release(m *member) {
	m.reset(&p.spares)
	p.free <- m
}

// close waits until every submitted member is written, and reports the
// first error of the pipeline or of its context. It is idempotent.
func (p *pipeline) close() error {
	if !p.closed {
		p.closed = true
		close(p.work)
		close(p.order)
		p.workers.Wait()
		<-p.sinkDone
		p.cancel(nil)
	}
	return p.err
}
