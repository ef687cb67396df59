package reader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/flate"
	"github.com/lazylayer/lazylayer/toc"
	digest "github.com/opencontainers/go-digest"
)

// decodedSpanBytes is how many bytes of decoded spans a zTOC layer keeps
// in memory, besides the one decoded last: the files of a span are
// mostly read together, and each read of one would otherwise decode the
// span from its checkpoint.
const decodedSpanBytes = 32 << 20

// spanIndex is what a zTOC layer (verifySpans) knows of its spans, and
// which of their decoder states it has verified.
type spanIndex struct {
	gzip   bool
	tarEnd int64 // where the tar stream ends, in the decompressed layer
	spans  []spanInfo

	// ok[i] is set once span i's decoder state is known to be the one
	// decompressing the layer from its start reaches: the window matches
	// the bytes before it. Span 0 starts at the stream's start.
	ok []atomic.Bool
	// header is span 0's gzip header, once checked to end at checkpoint 0.
	header atomic.Pointer[[]byte]
	// headers says where the file table's entries lie in the tar stream,
	// and which were checked against their tar headers.
	headers *entryHeaders

	mu      sync.Mutex
	loading map[int]chan struct{} // spans being decoded
	recent  []*decodedSpan        // decoded spans, the most recent last
	held    int64                 // bytes in recent
}

// spanInfo is one span of a zTOC layer.
type spanInfo struct {
	// frame is the blob range a load fetches: the span's compressed bytes,
	// and for span 0 of a gzip layer the gzip header before them, whose
	// keyed bytes the span digest does not cover.
	frame  fetcher.Range
	keyed  int64
	digest digest.Digest
	// The decoder state at the span's start: the bits of its first byte
	// that belong to it (0 for all) and the window, nil for a stream's
	// start. It ends at the boundary at nextIn, nextBits (nextIn 0 for the
	// last span).
	in, nextIn     int64
	bits, nextBits uint8
	window         []byte
	// out and outEnd are the span's decompressed bytes, in the tar stream.
	out, outEnd int64
}

// start returns where the compressed bytes the span digest covers start.
func (sp *spanInfo) start() int64 { return sp.frame.Offset + sp.keyed }

// decodedSpan is a span's decompressed bytes.
type decodedSpan struct {
	index int
	data  []byte
	// taint holds, as pairs of offsets lo, hi, the bytes that derive from
	// the window: copies of it, or of such bytes. It is nil when none do
	// or when the window was verified before decoding.
	taint []int64
}

// tainted reports whether any of bytes [lo, hi) derives from the window.
func (d *decodedSpan) tainted(lo, hi int64) bool {
	k := sort.Search(len(d.taint)/2, func(k int) bool { return d.taint[2*k+1] > lo })
	return k < len(d.taint)/2 && d.taint[2*k] < hi
}

func (s *spanIndex) init(cfg config) {
	s.ok = make([]atomic.Bool, len(s.spans))
	s.ok[0].Store(true)
	if !s.gzip {
		for i := range s.ok {
			s.ok[i].Store(true)
		}
	}
	s.loading = make(map[int]chan struct{})
}

// find returns the span whose frame starts at off, or -1.
func (s *spanIndex) find(off int64) int {
	k := sort.Search(len(s.spans), func(k int) bool { return s.spans[k].frame.Offset >= off })
	if k == len(s.spans) || s.spans[k].frame.Offset != off {
		return -1
	}
	return k
}

// lookup returns span i decoded, if it is in memory.
func (s *spanIndex) lookup(i int) *decodedSpan {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := len(s.recent) - 1; k >= 0; k-- {
		if s.recent[k].index == i {
			return s.recent[k]
		}
	}
	return nil
}

// remember keeps d in memory, dropping the spans decoded longest ago
// beyond decodedSpanBytes. s.mu must be held.
func (s *spanIndex) remember(d *decodedSpan) {
	s.recent = append(s.recent, d)
	s.held += int64(len(d.data))
	for len(s.recent) > 1 && s.held-int64(len(d.data)) > decodedSpanBytes {
		s.held -= int64(len(s.recent[0].data))
		s.recent[0] = nil
		s.recent = s.recent[1:]
	}
}

// errSpanEnd stops a decoder at the end of a span.
var errSpanEnd = errors.New("end of span")

// decodeSpan returns span i decoded, from memory or loaded through src:
// concurrent calls for one span share one load.
func (l *Layer) decodeSpan(ctx context.Context, i int, src frameSource) (*decodedSpan, error) {
	s := l.spans
	for {
		if d := s.lookup(i); d != nil {
			return d, nil
		}
		s.mu.Lock()
		busy, ok := s.loading[i]
		if !ok {
			busy = make(chan struct{})
			s.loading[i] = busy
		}
		s.mu.Unlock()
		if ok {
			select {
			case <-busy:
				continue // decoded, or failed: then try it here
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		d, err := l.loadSpan(ctx, i, src)
		s.mu.Lock()
		delete(s.loading, i)
		if err == nil {
			s.remember(d)
		}
		s.mu.Unlock()
		close(busy)
		return d, err
	}
}

// loadSpan fetches, verifies and decodes span i. A gzip span's decoding
// must end at the next checkpoint's bit position; the bytes that derive
// from an unverified window are noted.
func (l *Layer) loadSpan(ctx context.Context, i int, src frameSource) (*decodedSpan, error) {
	s := l.spans
	sp := &s.spans[i]
	comp, err := l.spanBytes(ctx, i, src)
	if err != nil {
		return nil, err
	}
	n := sp.outEnd - sp.out
	if !s.gzip {
		return &decodedSpan{index: i, data: comp[:n:n]}, nil
	}
	d := &decodedSpan{index: i, data: make([]byte, n)}
	if err := l.inflateSpan(comp, sp, sp.window, d.data, true); err != nil {
		return nil, fmt.Errorf("span %d: %w", i, err)
	}
	if !s.ok[i].Load() {
		if d.taint, err = l.taintOf(comp, sp, d.data); err != nil {
			return nil, fmt.Errorf("span %d: %w", i, err)
		}
	}
	return d, nil
}

// flateReader returns an idle decoder of the layer, and a function that
// makes it idle again.
func (l *Layer) flateReader() (*flate.Reader, func()) {
	zr, _ := l.decoders.Get().(*flate.Reader)
	if zr == nil {
		zr = flate.NewReader(nil)
	}
	return zr, func() {
		zr.OnBoundary = nil
		zr.Reset(nil)
		l.decoders.Put(zr)
	}
}

// inflateSpan decodes len(out) bytes of sp from comp, its compressed
// bytes, resuming with window; with atEnd, decoding must then reach the
// next checkpoint's boundary.
func (l *Layer) inflateSpan(comp []byte, sp *spanInfo, window []byte, out []byte, atEnd bool) error {
	zr, done := l.flateReader()
	defer done()
	n := int64(len(out))
	end := atEnd && sp.nextIn != 0
	reached := false
	if end {
		zr.OnBoundary = func(b *flate.Boundary) error {
			if b.Out == n && b.In == sp.nextIn-sp.start() && b.Bits == sp.nextBits {
				reached = true
				return errSpanEnd
			}
			return nil
		}
	}
	zr.Resume(bytes.NewReader(comp), sp.bits, window)
	if _, err := io.ReadFull(zr, out); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if end {
		var one [1]byte
		if m, err := zr.Read(one[:]); m != 0 || !reached || err != errSpanEnd {
			return fmt.Errorf("decoding does not stop at the next checkpoint, %d bytes on at bit %d: %w", n, 8*sp.nextIn-int64(sp.nextBits), ErrCorrupt)
		}
	}
	return nil
}

// taintOf returns which bytes of data, span sp decoded from comp, derive
// from its window (see decodedSpan.taint). Decoding the same bits with
// every window byte inverted changes exactly those bytes: the symbols a
// deflate stream decodes to do not depend on the window, and a byte is a
// literal, the same in both decodings, or a copy of a window byte. Once
// 32 KiB in a row are alike, no later byte can reach the window: decoding
// stops there.
func (l *Layer) taintOf(comp []byte, sp *spanInfo, data []byte) ([]int64, error) {
	inverse := make([]byte, flate.WindowSize)
	for k := range inverse {
		inverse[k] = ^sp.window[k]
	}
	zr, done := l.flateReader()
	defer done()
	zr.Resume(bytes.NewReader(comp), sp.bits, inverse)
	var taint []int64
	var buf [64 << 10]byte
	last := int64(0) // the end of the last byte that derives from the window
	for pos := int64(0); pos < int64(len(data)) && pos-last < flate.WindowSize; {
		got := buf[:min(int64(len(buf)), int64(len(data))-pos)]
		if _, err := io.ReadFull(zr, got); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		want := data[pos : pos+int64(len(got))]
		if bytes.Equal(got, want) {
			pos += int64(len(got))
			continue
		}
		for k := range got {
			if got[k] == want[k] {
				continue
			}
			at := pos + int64(k)
			if n := len(taint); n > 0 && taint[n-1] == at {
				taint[n-1] = at + 1
			} else {
				taint = append(taint, at, at+1)
			}
			last = at + 1
		}
		pos += int64(len(got))
	}
	return taint, nil
}

// spanBytes returns the compressed bytes of span i that its digest
// covers, verified: from the cache, or fetched through src and added to
// the cache. The gzip header before span 0 is checked to end where
// checkpoint 0 says, once per layer.
func (l *Layer) spanBytes(ctx context.Context, i int, src frameSource) ([]byte, error) {
	s := l.spans
	sp := &s.spans[i]
	c := l.cfg.cache
	if c != nil && (sp.keyed == 0 || s.header.Load() != nil) {
		if data, ok := c.Get(sp.digest); ok && int64(len(data)) == sp.frame.Length-sp.keyed &&
			(l.cfg.cacheVerifies || verify(sp.digest, data) == nil) {
			return data, nil
		}
	}
	data, err := src(ctx, sp.frame)
	if err != nil {
		return nil, fmt.Errorf("fetch span %d %v: %w", i, sp.frame, err)
	}
	if int64(len(data)) != sp.frame.Length {
		return nil, fmt.Errorf("fetch span %d %v: %d bytes: %w", i, sp.frame, len(data), ErrCorrupt)
	}
	body := data[sp.keyed:]
	if err := verify(sp.digest, body); err != nil {
		return nil, fmt.Errorf("span %d: %w", i, err)
	}
	if sp.keyed > 0 && s.header.Load() == nil {
		if err := l.checkHeader(data[:sp.keyed]); err != nil {
			return nil, err
		}
		h := bytes.Clone(data[:sp.keyed])
		s.header.Store(&h)
	}
	if c != nil {
		cache.AddVerified(c, sp.digest, body)
	}
	return body, nil
}

// checkHeader checks that h is a gzip member header, whole: that
// checkpoint 0, where h ends, is where the layer's deflate stream starts.
func (l *Layer) checkHeader(h []byte) error {
	zr, done := l.flateReader()
	defer done()
	var end *flate.Boundary
	zr.OnBoundary = func(b *flate.Boundary) error {
		c := *b
		end = &c
		return errSpanEnd
	}
	zr.Reset(bytes.NewReader(h))
	_, err := zr.Read(make([]byte, 1))
	if end == nil || end.In != int64(len(h)) || end.Bits != 0 || end.Out != 0 {
		return fmt.Errorf("checkpoint 0 at %d is not the end of the layer's gzip header (%v): %w", len(h), err, ErrCorrupt)
	}
	return nil
}

// verifyWindow checks span i's window against the bytes decoded before
// it: the end of span i-1, decoded from its own checkpoint. Where those
// derive from span i-1's window, that one is checked first, and so on
// back as far as needed; span 0 starts at the stream's start. Verified
// windows are remembered.
func (l *Layer) verifyWindow(ctx context.Context, i int) error {
	s := l.spans
	var pending []int
	for j := i; !s.ok[j].Load(); j-- {
		prev, err := l.decodeSpan(ctx, j-1, l.fetchFrame)
		if err != nil {
			return err
		}
		// The window is the WindowSize bytes before span j: the end of
		// span j-1, after the window of span j-1.
		want := make([]byte, 0, flate.WindowSize)
		if n := int64(len(prev.data)); n < flate.WindowSize {
			before := s.spans[j-1].window
			if before == nil {
				before = make([]byte, flate.WindowSize)
			}
			want = append(want, before[n:]...)
		}
		want = append(want, prev.data[max(0, len(prev.data)-flate.WindowSize):]...)
		if !bytes.Equal(want, s.spans[j].window) {
			return fmt.Errorf("checkpoint %d: %w", j, ErrWindow)
		}
		pending = append(pending, j)
		n := int64(len(prev.data))
		if n >= flate.WindowSize && !prev.tainted(n-flate.WindowSize, n) {
			break
		}
	}
	for _, j := range pending {
		s.ok[j].Store(true)
	}
	return nil
}

// loadSpanFrame is loadFrame for a layer whose frames are the spans of a
// zTOC: it decodes the span at frame, through src, and returns the
// chunks of plan, each verified by the span's digest and, if any of its
// bytes derives from the span's window, by the window's check.
func (l *Layer) loadSpanFrame(ctx context.Context, frame fetcher.Range, plan []span, src frameSource) (frameResult, error) {
	i := l.spans.find(frame.Offset)
	if i < 0 {
		return nil, fmt.Errorf("no span at %d: %w", frame.Offset, ErrCorrupt)
	}
	d, err := l.decodeSpan(ctx, i, src)
	// Decoded: what follows may wait for other spans' loads.
	yieldWorker(ctx)
	if err != nil {
		return nil, err
	}
	res := make(frameResult, len(plan))
	var werr error
	checked := false
	for _, p := range plan {
		lo, hi := p.inner, p.inner+p.size
		if hi > int64(len(d.data)) {
			res[p] = spanResult{err: fmt.Errorf("chunk [%d,%d) past span %d's %d bytes: %w", lo, hi, i, len(d.data), ErrCorrupt)}
			continue
		}
		if !l.spans.ok[i].Load() && d.tainted(lo, hi) {
			if !checked {
				werr, checked = l.verifyWindow(ctx, i), true
				if werr != nil && ctx.Err() != nil {
					return nil, werr
				}
			}
			if werr != nil {
				res[p] = spanResult{err: werr}
				continue
			}
		}
		res[p] = spanResult{data: d.data[lo:hi:hi]}
	}
	return res, nil
}

// cachedSpanChunk returns e.Chunks[i] from a span decoded in memory, if
// its bytes are verified.
func (l *Layer) cachedSpanChunk(e *toc.Entry, i int) ([]byte, bool) {
	c := &e.Chunks[i]
	k := l.spans.find(c.FrameOffset)
	if k < 0 {
		return nil, false
	}
	d := l.spans.lookup(k)
	lo, hi := c.InnerOffset, c.InnerOffset+c.Size
	if d == nil || hi > int64(len(d.data)) || !l.spans.ok[k].Load() && d.tainted(lo, hi) {
		return nil, false
	}
	return d.data[lo:hi:hi], true
}

// keys returns the cache keys of a zTOC layer: its span digests.
func (s *spanIndex) keys() []digest.Digest {
	var keys []digest.Digest
	seen := make(map[digest.Digest]bool)
	for _, sp := range s.spans {
		if !seen[sp.digest] {
			seen[sp.digest] = true
			keys = append(keys, sp.digest)
		}
	}
	return keys
}

// wholeLayer fetches the whole blob, span by span (from the cache where it
// has them; the rest in requests of backgroundBatch bytes, fetched ones
// added to it), verifies each span by its digest and writes the
// decompressed layer to w: decoding from the stream's start needs no
// window. It checks on the way every checkpoint's position and window,
// and at the end the layer digest, if given; then every span's state is
// verified. In the background (for FetchAll, whose options background
// holds), it waits before each request until no read is loading a chunk,
// and for the gate of WithFetchGate.
func (l *Layer) wholeLayer(ctx context.Context, w io.Writer, background *fetchAllConfig) error {
	s := l.spans
	st := &spanStream{l: l, ctx: ctx, background: background, hash: sha256.New()}
	tc, err := l.newTarChecker()
	if err != nil {
		return err
	}
	// The check comes first: no bytes of a header it refuses reach w.
	w = io.MultiWriter(tc, w)
	if !s.gzip {
		_, err = io.Copy(w, st)
	} else {
		zr := flate.NewReader(st)
		k := 0 // the next checkpoint
		zr.OnBoundary = func(b *flate.Boundary) error {
			if k == len(s.spans) {
				return nil
			}
			sp := &s.spans[k]
			if b.Out > sp.out {
				return fmt.Errorf("checkpoint %d at bit %d, output %d, is not between two blocks: %w", k, 8*sp.in-int64(sp.bits), sp.out, ErrCorrupt)
			}
			if b.Out == sp.out && b.In == sp.in && b.Bits == sp.bits {
				if k > 0 && !bytes.Equal(b.Window, sp.window) {
					return fmt.Errorf("checkpoint %d: %w", k, ErrWindow)
				}
				k++
			}
			return nil
		}
		_, err = zr.WriteTo(w)
		if err == nil && k < len(s.spans) {
			err = fmt.Errorf("checkpoint %d is not between two blocks: %w", k, ErrCorrupt)
		}
		if errors.Is(err, flate.ErrCorrupt) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	if err == nil {
		err = tc.close()
	}
	if err != nil {
		return err
	}
	if want := l.cfg.layerDigest; want != "" {
		if got := digest.NewDigest(digest.SHA256, st.hash); got != want {
			return fmt.Errorf("want %s, got %s: %w", want, got, ErrLayerDigest)
		}
	}
	for i := range s.ok {
		s.ok[i].Store(true)
	}
	s.headers.whole.Store(true)
	return nil
}

// spanStream reads a zTOC layer's blob span by span, verified, for
// wholeLayer, and hashes it.
type spanStream struct {
	l          *Layer
	ctx        context.Context
	background *fetchAllConfig // nil but for FetchAll
	hash       hash.Hash
	next       int   // the next span
	fed        int64 // the blob bytes read so far
	buf        []byte
	batch      *frameBatch
	batchEnd   int // the batch fetches spans up to batchEnd
}

func (st *spanStream) Read(p []byte) (int, error) {
	s := st.l.spans
	for len(st.buf) == 0 {
		if st.next == len(s.spans) {
			return 0, io.EOF
		}
		if st.next >= st.batchEnd {
			if err := st.plan(); err != nil {
				return 0, err
			}
		}
		sp := &s.spans[st.next]
		body, err := st.l.spanBytes(st.ctx, st.next, st.batch.get)
		if err != nil {
			return 0, err
		}
		if st.next == 0 {
			if h := s.header.Load(); h != nil {
				st.hash.Write(*h)
				st.fed = int64(len(*h))
				// The header goes to the decoder before the span.
				st.buf = append(bytes.Clone(*h), body...)
				st.next++
				st.hash.Write(body)
				st.fed += int64(len(body))
				break
			}
		}
		if skip := st.fed - sp.start(); skip >= 0 && skip <= int64(len(body)) {
			body = body[skip:]
		} else {
			return 0, fmt.Errorf("span %d at %d does not continue the blob at %d: %w", st.next, sp.start(), st.fed, ErrCorrupt)
		}
		st.hash.Write(body)
		st.fed += int64(len(body))
		st.buf = body
		st.next++
	}
	n := copy(p, st.buf)
	st.buf = st.buf[n:]
	return n, nil
}

// plan starts the next batch: the spans from st.next on, up to
// backgroundBatch compressed bytes of those the cache lacks.
func (st *spanStream) plan() error {
	l := st.l
	if st.background != nil {
		if err := l.waitIdle(st.ctx); err != nil {
			return err
		}
	}
	var ranges []fetcher.Range
	var size int64
	end := st.next
	for ; end < len(l.spans.spans) && size < backgroundBatch; end++ {
		sp := &l.spans.spans[end]
		if l.spanCached(sp) {
			continue
		}
		ranges = append(ranges, sp.frame)
		size += sp.frame.Length
	}
	if st.background != nil && st.background.gate != nil && len(ranges) > 0 {
		if err := st.background.gate(st.ctx, size); err != nil {
			return err
		}
	}
	st.batch, st.batchEnd = l.newFrameBatch(st.ctx, ranges), end
	return nil
}

// spanCached reports whether the cache holds sp, without loading it,
// and span 0's header, if any, was checked.
func (l *Layer) spanCached(sp *spanInfo) bool {
	if l.cfg.cache == nil || sp.keyed > 0 && l.spans.header.Load() == nil {
		return false
	}
	return cache.Has(l.cfg.cache, sp.digest)
}
