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
// concurrent ReadAt calls, as io.ReaderAt requires. Every range is one
// ReadAt call and counts as one request in Stats.
func FromReaderAt(ra io.ReaderAt, size int64, opts ...ReaderAtOption) *ReaderAt {
	f := &ReaderAt{ra: ra, size: size}
	for _, o := range opts {
		o.applyReaderAt(f)
	}
	return f
}

// Size returns the size given to FromReaderAt.
func (f *ReaderAt) Size(context.Context) (int64, error) { return f.size, nil }

// Fetch reads each range with one ReadAt call, in the order given. It
// checks every range against the size before reading any.
func (f *ReaderAt) Fetch(ctx context.Context, ranges []Range, fn func(Range, []byte) error) error {
	if err := checkRanges(ranges, f.size); err != nil {
		return err
	}
	for _, r := range ranges {
		if err := ctx.Err(); err != nil {
			return err
		}
		data := make([]byte, r.Length)
		start := time.Now()
		n, err := f.ra.ReadAt(data, r.Offset)
		// io.ReaderAt may report io.EOF along with a full read at the end.
		if n == len(data) {
			err = nil
		} else if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			err = fmt.Errorf("fetcher: read %v: %w", r, err)
		}
		f.request(RequestInfo{Spans: []Range{r}, Attempt: 1, Bytes: int64(n), Latency: time.Since(start), Err: err})
		if err != nil {
			return err
		}
		f.delivered(1)
		if err := fn(r, data); err != nil {
			return err
		}
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
