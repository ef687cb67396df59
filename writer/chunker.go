package writer

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Content-defined chunking of zstd:chunked files. Boundaries are those of
// containers/storage: a bup-style rolling sum over a 64-byte window marks
// a boundary after a byte that leaves the sum's low 16 bits all ones
// (about every 64 KiB). A chunk ends at the first boundary at least a
// minimum size past its start (containers/storage has no minimum, so its
// chunks are about 64 KiB; ours default to DefaultContentChunkMin), or at
// the chunk size; a run of at least 1 KiB of zeros becomes a chunk of its
// own that readers never fetch, as in containers/storage. Boundaries depend
// on content only, so an edit moves the chunks around it and no others,
// and unless the chunk size ends it, each of our chunks ends where one of
// containers/storage's does.
//
// The sum depends only on the bytes in its window, so the chunker computes
// it only where a boundary may end a chunk: from the minimum size on.
// Bytes before that are neither rolled nor looked at, but for a sparse
// probe for zero runs.
const (
	rollWindow = 64 // bytes; a power of two
	rollOffset = 31 // added to every byte, as bup does
	splitBits  = 16
	splitMask  = 1<<splitBits - 1

	// zeroRunMin is the shortest run of zero bytes that becomes a zeros
	// chunk.
	zeroRunMin = 1 << 10
	// zeroProbe is the stride at which the chunker probes for zero runs:
	// a run of zeroRunMin zeros covers an aligned zeroProbe-byte block.
	zeroProbe = zeroRunMin / 2
	// minCDCChunk is the shortest data chunk a rolling-sum boundary may
	// end, whatever the minimum asked for (containers/storage has no
	// minimum). Ordinary data almost never meets it; it stops periodic
	// input whose sum hits the split value every few bytes from producing
	// a TOC many times larger than the file.
	minCDCChunk = 1 << 10
)

// The rolling sums' values for a window of zero bytes.
const (
	rollInitS1 = rollWindow * rollOffset
	rollInitS2 = rollWindow * (rollWindow - 1) * rollOffset
)

// A boundary is never sought within rollWindow bytes of a chunk's start,
// so the window before it always lies inside the chunk.
var _ [minCDCChunk - rollWindow]struct{}

// chunker cuts one file's content, read from r, into chunks of at most max
// bytes: content-defined ones of at least minData bytes (but the last, and
// data cut short by a zero run) or, if fixed, chunks of max bytes but the
// last. It reuses its buffer from file to file.
type chunker struct {
	r       io.Reader
	left    int64 // bytes of the file not yet read into buf
	max     int
	minData int
	fixed   bool

	buf        []byte
	start, end int   // unconsumed bytes are buf[start:end]
	bufOff     int64 // the file offset of buf[0]
	// probed is the file offset of the first block (see findZeroRun)
	// not yet probed for zeros.
	probed int64
}

// newChunker returns a chunker of chunks of at most max bytes, cut by
// content at least minData bytes into a chunk unless fixed.
func newChunker(max, minData int, fixed bool) *chunker {
	return &chunker{max: max, minData: minData, fixed: fixed}
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
	c.start, c.end, c.bufOff, c.probed = 0, 0, 0, 0
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
	// fill guarantees max+zeroRunMin bytes unless the file ends sooner,
	// so a zero run starting before limit is seen whole up to zeroRunMin.
	limit := min(len(w), c.max)
	if c.fixed {
		return c.take(limit), false, nil
	}
	end := limit
	switch z := c.findZeroRun(w, limit); {
	case z == 0:
		return c.take(zeroRun(w, limit)), true, nil
	case z > 0:
		end = z
	}
	return c.take(c.boundary(w, end)), false, nil
}

// boundary returns where the chunk w[:end] ends: at the first boundary of
// the rolling sum at least minData (and minCDCChunk) bytes in, or at end.
func (c *chunker) boundary(w []byte, end int) int {
	from := max(c.minData, minCDCChunk)
	if from >= end {
		return end
	}
	// The sum at from is that of the window before it: roll the window's
	// bytes into the sum of a window of zeros.
	s1, s2 := uint32(rollInitS1), uint32(rollInitS2)
	for _, b := range w[from-rollWindow : from] {
		s1 += uint32(b)
		s2 += s1 - rollWindow*rollOffset
	}
	if s2&splitMask == splitMask {
		return from
	}
	// out[i] is the byte that leaves the window as in[i] enters it. The
	// sums live in locals: with the default minimum this loop sees a
	// sixteenth of a large file, but all of it with a minimum of zero.
	in := w[from:end]
	out := w[from-rollWindow : end-rollWindow]
	out = out[:len(in)]
	for i, b := range in {
		drop := uint32(out[i])
		s1 += uint32(b) - drop
		s2 += s1 - rollWindow*(drop+rollOffset)
		if s2&splitMask == splitMask {
			return from + i + 1
		}
	}
	return end
}

// findZeroRun returns where in w the first run of at least zeroRunMin
// zeros that starts before limit starts, or -1. A run that began before w
// is judged by its part in w.
func (c *chunker) findZeroRun(w []byte, limit int) int {
	// Such a run covers a whole block of zeroProbe bytes aligned in the
	// file, so probing one word of each block finds it, and blocks whose
	// word is zero get a closer look. Blocks are probed in order, so the
	// first run found is the first one. A block once rejected stays
	// rejected for later chunks, which see less of the run around it.
	wOff := c.bufOff + int64(c.start) // the file offset of w[0]
	a := int((max(c.probed, wOff)+zeroProbe-1)/zeroProbe*zeroProbe - wOff)
	// A run that starts before limit covers a block that starts before
	// limit+zeroProbe-1.
	for ; a < limit+zeroProbe-1; a += zeroProbe {
		if a+zeroProbe > len(w) {
			// The file ends within the block: a run long enough
			// covers an earlier one.
			break
		}
		if binary.LittleEndian.Uint64(w[a:]) != 0 {
			continue
		}
		s := a
		for s > 0 && w[s-1] == 0 {
			s--
		}
		if zeroRun(w[s:], zeroRunMin) >= zeroRunMin {
			// A later chunk that starts before the run finds it again.
			c.probed = wOff + int64(a)
			if s >= limit {
				return -1
			}
			return s
		}
	}
	c.probed = wOff + int64(a)
	return -1
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
		// Move the unconsumed bytes to the front.
		n := copy(c.buf, c.buf[c.start:c.end])
		c.bufOff += int64(c.start)
		c.start, c.end = 0, n
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
