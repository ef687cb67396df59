package reader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
)

// tocPiece is the size of the ranges Open asks for an index in: the
// fetcher merges them into one request, but hands each over as soon as it
// has arrived, so that decoding can start before the last byte is in.
const tocPiece = 64 << 10

// A tocDecoding fetches blob bytes and decodes them, as they arrive, as
// an eStargz TOC member starting at the first of them: the start of the
// blob's tail is the TOC's when the tail hint is exact, and the start of a
// fetched TOC member always is. The decoder reads the bytes in place, as
// an io.Reader that waits for them; it may not read past limit, which
// finish moves to the member's end once the footer has said where that
// is, so that a hostile member cannot run on into the footer.
type tocDecoding struct {
	from int64
	buf  []byte // blob bytes [from, from+len(buf)), filled as pieces arrive

	mu      sync.Mutex
	cond    sync.Cond
	got     []bool // by piece
	arrived int64  // bytes of buf arrived without a gap
	limit   int64  // bytes of buf the decoder may read
	final   bool   // limit is the member's end: reading up to it ends the member
	stopped bool   // the decoding is abandoned
	read    int64  // bytes of buf the decoder has read

	done chan struct{} // closed when the decoder has returned
	// The decoder's results.
	index *toc.TOC
	json  []byte
	err   error
}

// errDecoderStopped ends the read of an abandoned decoding.
var errDecoderStopped = errors.New("TOC decoding abandoned")

// fetchDecoding fetches blob bytes [from, to) and decodes them as they
// arrive (see tocDecoding), letting the decoder read no further than
// limit for now. The caller must call finish or stop.
func fetchDecoding(ctx context.Context, f fetcher.Fetcher, from, to, limit int64, cfg config) (blobRange, *tocDecoding, error) {
	n := (to - from + tocPiece - 1) / tocPiece
	d := &tocDecoding{from: from, buf: make([]byte, to-from), got: make([]bool, n), limit: limit - from, done: make(chan struct{})}
	d.cond.L = &d.mu
	go func() {
		defer close(d.done)
		d.index, d.json, d.err = toc.DecodeEStargzFrom(d, from, toc.WithMaxTOCSize(cfg.maxTOCSize))
	}()
	ranges := make([]fetcher.Range, n)
	for i := range ranges {
		off := from + int64(i)*tocPiece
		ranges[i] = fetcher.Range{Offset: off, Length: min(tocPiece, to-off)}
	}
	err := f.Fetch(ctx, ranges, func(r fetcher.Range, data []byte) error {
		i := (r.Offset - from) / tocPiece
		if r.Offset < from || i >= n || r != ranges[i] || int64(len(data)) != r.Length {
			return fmt.Errorf("fetcher returned %d bytes at %d, not a requested range: %w", len(data), r.Offset, ErrCorrupt)
		}
		copy(d.buf[r.Offset-from:], data)
		d.mu.Lock()
		defer d.mu.Unlock()
		d.got[i] = true
		for k := d.arrived / tocPiece; k < n && d.got[k]; k++ {
			d.arrived = min((k+1)*tocPiece, int64(len(d.buf)))
		}
		d.cond.Broadcast()
		return nil
	})
	if err == nil && d.arrived != int64(len(d.buf)) {
		err = fmt.Errorf("fetcher skipped a range: %w", ErrCorrupt)
	}
	if err != nil {
		d.stop()
		return blobRange{}, nil, err
	}
	return blobRange{from, d.buf}, d, nil
}

// Read gives the decoder the bytes that have arrived, up to the limit,
// waiting for more while there may be more.
func (d *tocDecoding) Read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		if d.stopped {
			return 0, errDecoderStopped
		}
		if end := min(d.arrived, d.limit); d.read < end {
			n := copy(p, d.buf[d.read:end])
			d.read += int64(n)
			return n, nil
		}
		if d.final && d.read >= d.limit {
			return 0, io.EOF
		}
		d.cond.Wait()
	}
}

// finish lets the decoder read the member up to blob offset tocEnd, its
// end, and returns what it decoded.
func (d *tocDecoding) finish(tocEnd int64) (*toc.TOC, []byte, error) {
	d.mu.Lock()
	d.limit, d.final = tocEnd-d.from, true
	d.cond.Broadcast()
	d.mu.Unlock()
	<-d.done
	return d.index, d.json, d.err
}

// stop abandons the decoding.
func (d *tocDecoding) stop() {
	d.mu.Lock()
	d.stopped = true
	d.cond.Broadcast()
	d.mu.Unlock()
	<-d.done
}

// decodeEStargzMember decodes a TOC member held in memory, inflating and
// decoding at once.
func decodeEStargzMember(member []byte, tocOffset int64, cfg config) (*toc.TOC, []byte, error) {
	return toc.DecodeEStargzFrom(bytes.NewReader(member), tocOffset, toc.WithMaxTOCSize(cfg.maxTOCSize))
}
