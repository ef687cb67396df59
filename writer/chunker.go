package writer

import (
	"bytes"
	"fmt"
	"io"
)

// Content-defined chunking of zstd:chunked files, compatible with
// containers/storage: a bup-style rolling sum over a 64-byte window cuts a
// chunk after a byte that leaves the sum's low 16 bits all ones (about
// 64 KiB on average), and a run of at least 1 KiB of zeros becomes a chunk
// of its own that readers never fetch. Boundaries then depend on content
// only, so an edit moves the chunks around it and no others.
const (
	rollWindow = 64 // bytes; a power of two
	rollOffset = 31 // added to every byte, as bup does
	splitBits  = 16
	splitMask  = 1<<splitBits - 1

	// zeroRunMin is the shortest run of zero bytes that becomes a zeros
	// chunk.
	zeroRunMin = 1 << 10
	// minCDCChunk is the shortest data chunk a rolling-sum boundary may
	// end (containers/storage has no minimum). Ordinary data almost never
	// meets it; it stops periodic input whose sum hits the split value
	// every few bytes from producing a TOC many times larger than the file.
	minCDCChunk = 1 << 10

	// zeroScanStep is how far ahead the chunker looks for zero bytes at
	// a time.
	zeroScanStep = 16 << 10
)

// The rolling sums' values at the start of a file, whose window starts
// as zero bytes.
const (
	rollInitS1 = rollWindow * rollOffset
	rollInitS2 = rollWindow * (rollWindow - 1) * rollOffset
)

// chunker cuts one file's content, read from r, into chunks of at most max
// bytes: content-defined ones or, if fixed, chunks of max bytes but the
// last. It reuses its buffer from file to file.
type chunker struct {
	r     io.Reader
	left  int64 // bytes of the file not yet read into buf
	max   int
	fixed bool
	// s1 and s2 are the rolling sums over the window, the rollWindow
	// bytes before buf[start]. Those bytes stay in buf (zeros before the
	// file's first byte), so that the byte leaving the window is read
	// from where it is rather than copied into a window of its own.
	s1, s2 uint32

	buf        []byte
	start, end int // unconsumed bytes are buf[start:end]; start >= rollWindow
	// shortZeros is the buf index below which every zero byte belongs to
	// a run already found too short for a zeros chunk.
	shortZeros int
}

func newChunker(max int, fixed bool) *chunker {
	return &chunker{max: max, fixed: fixed}
}

// reset starts a file of size bytes read from r.
func (c *chunker) reset(r io.Reader, size int64) {
	// The buffer grows to what the largest file so far needs: a file
	// that fits whole never moves, and a layer of small files does not
	// pay for 8 MiB.
	full := rollWindow + 2*(c.max+zeroRunMin)
	if need := int(min(int64(full), rollWindow+size)); len(c.buf) < need {
		c.buf = make([]byte, min(full, max(need, 2*len(c.buf))))
	}
	c.r, c.left = r, size
	c.start, c.end, c.shortZeros = rollWindow, rollWindow, 0
	clear(c.buf[:rollWindow])
	c.s1, c.s2 = rollInitS1, rollInitS2
}

// next returns the next chunk, valid until the following call, and whether
// it is all zeros; io.EOF after the last one.
func (c *chunker) next() ([]byte, bool, error) {
	if err := c.fill(); err != nil {
		return nil, false, err
	}
	w := c.buf[c.start:c.end]
	if len(w) == 0 {
		return nil, false, io.EOF
	}
	// out[i] is the byte that leaves the window as w[i] enters it.
	out := c.buf[c.start-rollWindow : c.end-rollWindow]
	// fill guarantees max+zeroRunMin bytes unless the file ends sooner,
	// so a zero run starting before limit is seen whole up to zeroRunMin.
	limit := min(len(w), c.max)
	if c.fixed {
		return c.take(limit), false, nil
	}
	// The sums live in locals for the byte loop: this is the writer's
	// hottest loop after compression itself.
	s1, s2 := c.s1, c.s2
	for i := 0; i < limit; {
		// Roll up to the next zero byte that might start a zeros chunk.
		// The search looks one zeroScanStep ahead at a time: a cut ends
		// the call after about 64 KiB, and searching the whole buffer
		// for a zero that text never holds would cost more than rolling.
		stop := min(limit, i+zeroScanStep)
		if from := max(i, c.shortZeros-c.start); from < stop {
			if z := bytes.IndexByte(w[from:stop], 0); z >= 0 {
				stop = from + z
			}
		}
		in := w[i:stop]
		leaving := out[i:stop]
		leaving = leaving[:len(in)]
		for j, b := range in {
			drop := uint32(leaving[j])
			s1 += uint32(b) - drop
			s2 += s1 - rollWindow*(drop+rollOffset)
			if s2&splitMask == splitMask && i+j+1 >= minCDCChunk {
				c.s1, c.s2 = s1, s2
				return c.take(i + j + 1), false, nil
			}
		}
		i = stop
		if i == limit {
			break
		}
		if w[i] != 0 {
			continue // the search step ended before a zero
		}
		if run := zeroRun(w[i:], zeroRunMin); run < zeroRunMin {
			// Too short: these zeros are rolled as data.
			c.shortZeros = c.start + i + run
			continue
		}
		if i > 0 {
			c.s1, c.s2 = s1, s2
			return c.take(i), false, nil
		}
		// Once the window holds only zeros the sums no longer change, so
		// rolling the run's first window's worth of zeros is enough.
		n := zeroRun(w, limit)
		for _, drop := range out[:min(n, rollWindow)] {
			s1 -= uint32(drop)
			s2 += s1 - rollWindow*(uint32(drop)+rollOffset)
		}
		c.s1, c.s2 = s1, s2
		return c.take(n), true, nil
	}
	c.s1, c.s2 = s1, s2
	return c.take(limit), false, nil
}

// zeroRun counts the zero bytes at the start of b, up to limit.
func zeroRun(b []byte, limit int) int {
	b = b[:min(len(b), limit)]
	for i, x := range b {
		if x != 0 {
			return i
		}
	}
	return len(b)
}

func (c *chunker) take(n int) []byte {
	chunk := c.buf[c.start : c.start+n]
	c.start += n
	return chunk
}

// fill reads until max+zeroRunMin bytes are buffered or the file is read.
func (c *chunker) fill() error {
	need := c.max + zeroRunMin
	if c.end-c.start >= need || c.left == 0 {
		return nil
	}
	if len(c.buf)-c.start < need {
		// Move the unconsumed bytes, and the window before them, to the
		// front.
		n := copy(c.buf, c.buf[c.start-rollWindow:c.end])
		c.shortZeros = max(c.shortZeros-c.start+rollWindow, 0)
		c.start, c.end = rollWindow, n
	}
	n := int(min(c.left, int64(len(c.buf)-c.end)))
	if _, err := io.ReadFull(c.r, c.buf[c.end:c.end+n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("reading content: %w", err)
	}
	c.end += n
	c.left -= int64(n)
	return nil
}
