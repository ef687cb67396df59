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
// fetched TOC member always is. Bytes past feedTo are held back until
// finish knows where the member ends; until then a hostile member cannot
// run on into the footer.
type tocDecoding struct {
	from, feedTo int64
	buf          []byte // blob bytes [from, from+len(buf)), filled as pieces arrive
	got          []bool // by piece
	fed          int64  // bytes of buf handed to the decoder

	pw   *io.PipeWriter
	done chan struct{} // closed when the decoder has returned
	// The decoder's results.
	index *toc.TOC
	json  []byte
	err   error

	mu sync.Mutex // serialises feeding
}

// errDecoderDone ends a feed the decoder no longer reads.
var errDecoderDone = errors.New("decoder done")

// fetchDecoding fetches blob bytes [from, to) and decodes them as they
// arrive (see tocDecoding), feeding the decoder no further than feedTo.
// The caller must call finish or stop.
func fetchDecoding(ctx context.Context, f fetcher.Fetcher, from, to, feedTo int64, cfg config) (blobRange, *tocDecoding, error) {
	n := (to - from + tocPiece - 1) / tocPiece
	d := &tocDecoding{from: from, feedTo: feedTo, buf: make([]byte, to-from), got: make([]bool, n), done: make(chan struct{})}
	pr, pw := io.Pipe()
	d.pw = pw
	go func() {
		defer close(d.done)
		d.index, d.json, d.err = toc.DecodeEStargzFrom(pr, from, toc.WithMaxTOCSize(cfg.maxTOCSize))
		pr.CloseWithError(errDecoderDone)
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
		d.feed(d.feedTo)
		return nil
	})
	if err != nil {
		d.stop()
		return blobRange{}, nil, err
	}
	return blobRange{from, d.buf}, d, nil
}

// feed hands the decoder the bytes that have arrived without a gap, up to
// blob offset limit. d.mu must be held.
func (d *tocDecoding) feed(limit int64) {
	end := d.fed
	for i := end / tocPiece; i < int64(len(d.got)) && d.got[i]; i++ {
		end = min((i+1)*tocPiece, int64(len(d.buf)))
	}
	end = min(end, limit-d.from)
	if end > d.fed {
		// A decoder that has stopped reading fails the write at once.
		d.pw.Write(d.buf[d.fed:end])
		d.fed = end
	}
}

// finish feeds the decoder the member up to blob offset tocEnd, its end,
// and returns what it decoded.
func (d *tocDecoding) finish(tocEnd int64) (*toc.TOC, []byte, error) {
	d.mu.Lock()
	d.feed(tocEnd)
	d.mu.Unlock()
	d.pw.Close()
	<-d.done
	return d.index, d.json, d.err
}

// stop abandons the decoding.
func (d *tocDecoding) stop() {
	d.pw.CloseWithError(errDecoderDone)
	<-d.done
}

// decodeEStargzMember decodes a TOC member held in memory, inflating and
// decoding at once.
func decodeEStargzMember(member []byte, tocOffset int64, cfg config) (*toc.TOC, []byte, error) {
	return toc.DecodeEStargzFrom(bytes.NewReader(member), tocOffset, toc.WithMaxTOCSize(cfg.maxTOCSize))
}
