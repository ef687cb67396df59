package reader

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/lazylayer/lazylayer/toc/estargz"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
)

// tocPiece is the size of the ranges Open asks for an index in: the
// fetcher merges them into one request, but hands each over as soon as it
// has arrived, so that decoding can start before the last byte is in.
const tocPiece = 64 << 10

// An arrival is blob bytes that one fetch delivers in pieces of tocPiece
// bytes, read in place as they arrive (arrivalReader), so that an index
// can be decoded while it downloads. Its spans are contiguous runs of
// bytes, each in one buffer; a span can be given already filled.
type arrival struct {
	spans []blobRange

	mu      sync.Mutex
	cond    sync.Cond
	pieces  []arrivalPiece // sorted by offset
	stopped bool           // readers are abandoned
}

// An arrivalPiece is one fetched range of an arrival's spans.
type arrivalPiece struct {
	offset int64
	data   []byte // a slice of its span's buffer
	got    bool
}

// errDecoderStopped ends the read of an abandoned decoding.
var errDecoderStopped = errors.New("index decoding abandoned")

// newArrival returns an arrival of the given spans of the blob. The bytes
// of them that have holds are there already, and the rest is to be
// fetched: a span that have holds whole shares have's bytes, and one that
// have holds in part gets a buffer of its own with that part copied in.
func newArrival(have blobRange, spans ...fetcher.Range) *arrival {
	a := &arrival{}
	a.cond.L = &a.mu
	for _, sp := range spans {
		if data, ok := have.slice(sp.Offset, sp.End()); ok {
			a.spans = append(a.spans, blobRange{sp.Offset, data})
			a.pieces = append(a.pieces, arrivalPiece{sp.Offset, data, true})
			continue
		}
		data := make([]byte, sp.Length)
		a.spans = append(a.spans, blobRange{sp.Offset, data})
		// have's part of the span, [from, to), is copied; the bytes
		// before and after it are fetched.
		from, to := max(sp.Offset, have.offset), min(sp.End(), have.offset+int64(len(have.data)))
		if from < to {
			part := data[from-sp.Offset : to-sp.Offset]
			copy(part, have.data[from-have.offset:])
			a.pieces = append(a.pieces, arrivalPiece{from, part, true})
		} else {
			from, to = sp.End(), sp.End()
		}
		a.addMissing(sp.Offset, data[:from-sp.Offset])
		a.addMissing(to, data[to-sp.Offset:])
	}
	slices.SortFunc(a.pieces, func(x, y arrivalPiece) int { return cmp.Compare(x.offset, y.offset) })
	return a
}

// addMissing adds pieces to fetch into data, blob bytes [offset,
// offset+len(data)).
func (a *arrival) addMissing(offset int64, data []byte) {
	for off := 0; off < len(data); off += tocPiece {
		a.pieces = append(a.pieces, arrivalPiece{offset + int64(off), data[off:min(off+tocPiece, len(data))], false})
	}
}

// fetch fetches the pieces not already there, as one fetch whose ranges
// the fetcher may merge into one request, and returns when all are in.
func (a *arrival) fetch(ctx context.Context, f fetcher.Fetcher) error {
	var ranges []fetcher.Range
	for _, p := range a.pieces {
		if !p.got {
			ranges = append(ranges, fetcher.Range{Offset: p.offset, Length: int64(len(p.data))})
		}
	}
	if len(ranges) == 0 {
		return nil
	}
	err := f.Fetch(ctx, ranges, func(r fetcher.Range, data []byte) error {
		a.mu.Lock()
		defer a.mu.Unlock()
		i, found := slices.BinarySearchFunc(a.pieces, r.Offset, func(p arrivalPiece, off int64) int { return cmp.Compare(p.offset, off) })
		if !found || a.pieces[i].got || r.Length != int64(len(a.pieces[i].data)) || int64(len(data)) != r.Length {
			return fmt.Errorf("fetcher returned %d bytes at %d, not a requested range: %w", len(data), r.Offset, ErrCorrupt)
		}
		copy(a.pieces[i].data, data)
		a.pieces[i].got = true
		a.cond.Broadcast()
		return nil
	})
	if err == nil {
		for _, p := range a.pieces {
			if !p.got {
				err = fmt.Errorf("fetcher skipped a range: %w", ErrCorrupt)
				break
			}
		}
	}
	return err
}

// slice returns blob bytes [from, to) if one span holds them; they are
// complete once fetch has returned without error.
func (a *arrival) slice(from, to int64) ([]byte, bool) {
	for _, sp := range a.spans {
		if data, ok := sp.slice(from, to); ok {
			return data, true
		}
	}
	return nil, false
}

// stop abandons the arrival's readers: their reads fail from now on.
func (a *arrival) stop() {
	a.mu.Lock()
	a.stopped = true
	a.cond.Broadcast()
	a.mu.Unlock()
}

// reader returns a reader of blob bytes [from, end) as they arrive. If
// final is false, end is only as far as the reader may read for now:
// at end it waits for setEnd.
func (a *arrival) reader(from, end int64, final bool) *arrivalReader {
	return &arrivalReader{a: a, pos: from, end: end, final: final}
}

// An arrivalReader reads an arrival's bytes in place, waiting for them.
type arrivalReader struct {
	a        *arrival
	pos, end int64 // blob offsets, guarded by a.mu
	final    bool  // reading up to end is the end
	piece    int   // index of the piece holding pos, or before it
}

// Read gives the bytes that have arrived, up to the end, waiting for more
// while there may be more.
func (r *arrivalReader) Read(p []byte) (int, error) {
	a := r.a
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		switch {
		case a.stopped:
			return 0, errDecoderStopped
		case r.pos < r.end:
			for r.piece < len(a.pieces) && a.pieces[r.piece].offset+int64(len(a.pieces[r.piece].data)) <= r.pos {
				r.piece++
			}
			if r.piece == len(a.pieces) || a.pieces[r.piece].offset > r.pos {
				return 0, fmt.Errorf("reader: blob offset %d is not being fetched", r.pos)
			}
			if pc := a.pieces[r.piece]; pc.got {
				n := copy(p, pc.data[r.pos-pc.offset:min(r.end-pc.offset, int64(len(pc.data)))])
				r.pos += int64(n)
				return n, nil
			}
		case r.final:
			return 0, io.EOF
		}
		a.cond.Wait()
	}
}

// setEnd lets r read up to blob offset end, the end of its data.
func (r *arrivalReader) setEnd(end int64) {
	r.a.mu.Lock()
	r.end, r.final = end, true
	r.a.cond.Broadcast()
	r.a.mu.Unlock()
}

// A tocDecoding decodes an eStargz TOC member from an arrival's bytes
// as they arrive, starting at its first byte: the start of the blob's
// tail is the TOC's when the tail hint is exact, and the start of a
// fetched TOC member always is. It may not read past a limit, which finish
// moves to the member's end once the footer has said where that is, so
// that a hostile member cannot run on into the footer.
type tocDecoding struct {
	from int64
	a    *arrival
	r    *arrivalReader

	done chan struct{} // closed when the decoder has returned
	// The decoder's results.
	index *toc.TOC
	json  []byte
	err   error
}

// fetchDecoding fetches blob bytes [from, to), but for those have holds,
// and decodes them as they arrive (see tocDecoding), letting the decoder
// read no further than limit for now. The caller must call finish or stop.
func fetchDecoding(ctx context.Context, f fetcher.Fetcher, have blobRange, from, to, limit int64, cfg config) (blobRange, *tocDecoding, error) {
	a := newArrival(have, fetcher.Range{Offset: from, Length: to - from})
	d := &tocDecoding{from: from, a: a, r: a.reader(from, limit, false), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		d.index, d.json, d.err = estargz.DecodeFrom(d.r, from, cfg.decodeOptions()...)
	}()
	if err := a.fetch(ctx, f); err != nil {
		d.stop()
		return blobRange{}, nil, err
	}
	return a.spans[0], d, nil
}

// finish lets the decoder read the member up to blob offset tocEnd, its
// end, and returns what it decoded.
func (d *tocDecoding) finish(tocEnd int64) (*toc.TOC, []byte, error) {
	d.r.setEnd(tocEnd)
	<-d.done
	return d.index, d.json, d.err
}

// stop abandons the decoding.
func (d *tocDecoding) stop() {
	d.a.stop()
	<-d.done
}

// decodeEStargzMember decodes a TOC member held in memory, inflating and
// decoding at once.
func decodeEStargzMember(member []byte, tocOffset int64, cfg config) (*toc.TOC, []byte, error) {
	return estargz.DecodeFrom(bytes.NewReader(member), tocOffset, cfg.decodeOptions()...)
}
