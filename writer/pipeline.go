package writer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
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
	encode(dst *bytes.Buffer, src []byte) error
}

type gzipEncoder struct{ zw *gzip.Writer }

func newGzipEncoder(level int) (frameEncoder, error) {
	zw, err := gzip.NewWriterLevel(nil, level)
	if err != nil {
		return nil, err
	}
	return &gzipEncoder{zw: zw}, nil
}

func (g *gzipEncoder) encode(dst *bytes.Buffer, src []byte) error {
	g.zw.Reset(dst)
	if _, err := g.zw.Write(src); err != nil {
		return err
	}
	return g.zw.Close()
}

// member is one compression unit on its way through the pipeline.
type member struct {
	raw []byte // uncompressed bytes, filled by the producer
	// chunks are the spans of raw holding chunks of file content, in
	// order; the worker digests them, so that the producer, the one
	// goroutine reading the input, does not.
	chunks  []span
	digests []digest.Digest // of chunks, set by the worker
	out     bytes.Buffer
	err     error
	done    chan struct{} // closed once out, digests and err are set
}

// keptBuffer is the largest buffer an idle member keeps.
const keptBuffer = 256 << 10

// span is the part of a member's raw bytes at [off, off+n).
type span struct{ off, n int }

// compress fills in m's compressed form and the digests of its chunks.
func (m *member) compress(enc frameEncoder) error {
	for _, c := range m.chunks {
		sum := sha256.Sum256(m.raw[c.off : c.off+c.n])
		m.digests = append(m.digests, digest.NewDigestFromBytes(digest.SHA256, sum[:]))
	}
	return enc.encode(&m.out, m.raw)
}

// reset empties m for reuse.
func (m *member) reset() {
	// A member keeps its buffers for the next use unless they grew large:
	// many members exist, and only the byte budget bounds what is in
	// flight, not what idle members hold.
	if cap(m.raw) > keptBuffer {
		m.raw = nil
	}
	if m.out.Cap() > keptBuffer {
		m.out = bytes.Buffer{}
	}
	m.raw = m.raw[:0]
	m.chunks = m.chunks[:0]
	m.digests = m.digests[:0]
	m.out.Reset()
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
// the blob's digest and size, the DiffID and uncompressed size, and the TOC.
func (s *blobSink) finish(res *Result, t *toc.TOC) error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	res.Digest = digest.NewDigest(digest.SHA256, s.blob)
	res.Size = s.size
	res.DiffID = digest.NewDigest(digest.SHA256, s.diffID)
	res.UncompressedSize = s.uncompressedSize
	res.TOCDigest = t.Digest
	res.TOC = t
	return nil
}

// write appends one compressed member, whose uncompressed form is raw.
func (s *blobSink) write(compressed, raw []byte) error {
	s.blob.Write(compressed)
	s.diffID.Write(raw)
	s.uncompressedSize += int64(len(raw))
	n, err := s.w.Write(compressed)
	s.size += int64(n)
	return err
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

	workers  sync.WaitGroup
	sinkDone chan struct{}
	sink     *blobSink
	// offsets[i] is the blob offset of member i, and digests the digests
	// of the members' chunks in submission order; owned by the sink
	// goroutine until close returns.
	offsets []int64
	digests []digest.Digest
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
	p.drained = sync.NewCond(&p.mu)
	p.ctx, p.cancel = context.WithCancelCause(ctx)
	for range inFlight {
		p.free <- new(member)
	}
	for _, enc := range encoders {
		p.workers.Go(func() {
			for m := range p.work {
				m.err = m.compress(enc)
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
				p.offsets = append(p.offsets, p.sink.size)
				p.digests = append(p.digests, m.digests...)
				p.err = p.sink.write(m.out.Bytes(), m.raw)
			}
			if p.err != nil {
				p.cancel(p.err)
			}
		}
		p.mu.Lock()
		p.inFlightBytes -= len(m.raw)
		p.drained.Broadcast()
		p.mu.Unlock()
		m.reset()
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
	m.reset()
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
