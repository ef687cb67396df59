package fetcher

import (
	"context"
	"fmt"
	"io"
	"time"
)

// ReaderAt is a Fetcher over an io.ReaderAt of known size. It is safe for
// concurrent use.
type ReaderAt struct {
	ra   io.ReaderAt
	size int64
	recorder
}

// FromReaderAt returns a Fetcher over ra, whose size is size: a local file,
// a bytes.Reader, or any other random-access source. ra must be safe for
// concurrent ReadAt calls, as io.ReaderAt requires. Every ReadAt call
// counts as one request in Stats.
func FromReaderAt(ra io.ReaderAt, size int64, opts ...ReaderAtOption) *ReaderAt {
	f := &ReaderAt{ra: ra, size: size}
	for _, o := range opts {
		o.applyReaderAt(f)
	}
	return f
}

// Size returns the size given to FromReaderAt.
func (f *ReaderAt) Size(context.Context) (int64, error) { return f.size, nil }

// Fetch reads the ranges in the order given, each run of ranges that
// follow one another without a gap with one ReadAt call. It checks every
// range against the size before reading any.
func (f *ReaderAt) Fetch(ctx context.Context, ranges []Range, fn func(Range, []byte) error) error {
	if err := checkRanges(ranges, f.size); err != nil {
		return err
	}
	for len(ranges) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		run := 1
		for run < len(ranges) && ranges[run].Offset == ranges[run-1].End() {
			run++
		}
		span := Range{Offset: ranges[0].Offset, Length: ranges[run-1].End() - ranges[0].Offset}
		data := make([]byte, span.Length)
		start := time.Now()
		n, err := f.ra.ReadAt(data, span.Offset)
		// io.ReaderAt may report io.EOF along with a full read at the end.
		if n == len(data) {
			err = nil
		} else if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			err = fmt.Errorf("fetcher: read %v: %w", span, err)
		}
		f.request(RequestInfo{Spans: []Range{span}, Attempt: 1, Bytes: int64(n), Latency: time.Since(start), Err: err})
		if err != nil {
			return err
		}
		for _, r := range ranges[:run] {
			f.delivered(1)
			at := r.Offset - span.Offset
			if err := fn(r, data[at:at+r.Length:at+r.Length]); err != nil {
				return err
			}
		}
		ranges = ranges[run:]
	}
	return nil
}

// checkRanges reports the first range that does not lie within a blob of
// size bytes.
func checkRanges(ranges []Range, size int64) error {
	for _, r := range ranges {
		if r.Offset < 0 || r.Length < 0 || r.End() < r.Offset || r.End() > size {
			return fmt.Errorf("fetcher: range %v outside blob of %d bytes: %w", r, size, ErrRange)
		}
	}
	return nil
}
