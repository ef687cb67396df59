package fetcher

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"

	"github.com/lazylayer/lazylayer/internal/iox"
)

// delivery reads the spans of one Request, over as many attempts and
// requests as that takes, and hands each caller range to fn as soon as
// its last byte is in: the caller can work on a range while the rest of
// the answer is still downloading. It remembers which ranges fn has, so
// a retry after a failure part-way never hands a range twice.
//
// Different spans may be read by different goroutines at once; one span
// is read by one goroutine at a time, its job's or the one reading a
// stream the job is subscribed to.
type delivery struct {
	f      *HTTP
	spans  []Span
	ranges []Range // the caller's ranges, which Span.Covers index
	fn     func(Range, []byte) error

	bufs   [][]byte // each span's bytes; allocated on first read, dropped once all are handed
	filled []int64  // bytes of each span read, from its start
	handed []int    // how many of each span's Covers fn has been given, in Covers order
}

func newDelivery(f *HTTP, spans []Span, ranges []Range, fn func(Range, []byte) error) *delivery {
	return &delivery{
		f: f, spans: spans, ranges: ranges, fn: fn,
		bufs:   make([][]byte, len(spans)),
		filled: make([]int64, len(spans)),
		handed: make([]int, len(spans)),
	}
}

// callbackError carries fn's error out through the retry loop, which
// must stop on it. It has no Unwrap on purpose: an error fn returns must
// not look retryable, whatever it wraps. Fetch returns fn's error itself.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }

// callerError returns fn's own error if err carries one, else err.
func callerError(err error) error {
	var cb *callbackError
	if errors.As(err, &cb) {
		return cb.err
	}
	return err
}

// done tells whether span i has been read in full.
func (d *delivery) done(i int) bool { return d.filled[i] == d.spans[i].Length }

// missing returns the unread rest of each unfinished span among idx.
func (d *delivery) missing(idx []int) []Range {
	var want []Range
	for _, i := range idx {
		if s := d.spans[i]; !d.done(i) {
			want = append(want, Range{Offset: s.Offset + d.filled[i], Length: s.Length - d.filled[i]})
		}
	}
	return want
}

// spanIndex returns the index among idx of the unfinished span equal to
// r, or -1.
func (d *delivery) spanIndex(idx []int, r Range) int {
	for _, i := range idx {
		if !d.done(i) && d.spans[i].Range == r {
			return i
		}
	}
	return -1
}

func (d *delivery) buf(i int) []byte {
	if d.bufs[i] == nil {
		d.bufs[i] = make([]byte, d.spans[i].Length)
	}
	return d.bufs[i]
}

// hand gives fn, in offset order, the ranges of span i whose bytes are
// all read and which fn does not have yet. A span that is exactly one
// range is handed over as is; otherwise each range gets its own copy, so
// fn may keep or change it.
func (d *delivery) hand(i int) error {
	s := d.spans[i]
	for d.handed[i] < len(s.Covers) {
		r := d.ranges[s.Covers[d.handed[i]]]
		if r.End() > s.Offset+d.filled[i] {
			return nil
		}
		// Counted before the call: whatever fn does, it never gets r twice.
		d.handed[i]++
		data := d.bufs[i]
		if len(s.Covers) > 1 || r != s.Range {
			data = make([]byte, r.Length)
			copy(data, d.bufs[i][r.Offset-s.Offset:])
		}
		if err := d.fn(r, data); err != nil {
			return &callbackError{err}
		}
		d.f.delivered(1)
	}
	d.bufs[i] = nil // fn has all it wants of this span
	return nil
}

// put copies into span i what p, the blob's bytes from offset at, holds
// of the span's unread bytes from its first on, and hands fn the ranges
// that completes.
func (d *delivery) put(i int, at int64, p []byte) error {
	s := d.spans[i]
	from := s.Offset + d.filled[i]
	if d.done(i) || from < at || from >= at+int64(len(p)) {
		return nil
	}
	d.filled[i] += int64(copy(d.buf(i)[d.filled[i]:], p[from-at:]))
	return d.hand(i)
}

// multipartSlack is how many bytes of part headers and boundaries a
// multipart/byteranges body may hold per part beyond the data asked for.
const multipartSlack = 8 << 10

// readMultipart reads a multipart/byteranges body answering a request for
// the unfinished spans among idx. Every part must carry a Content-Range
// equal to one of those spans and exactly that many bytes; parts may come
// in any order. A part's ranges go to fn once the part has passed these
// checks, before the next part is read; spans finished before a failure
// stay done for the retry. The body is read only up to the bytes asked
// plus a little slack per part.
func (d *delivery) readMultipart(body io.Reader, boundary string, idx []int) (int64, error) {
	f := d.f
	if boundary == "" {
		return 0, fmt.Errorf("fetcher: %s: multipart response without boundary: %w", f.where(), ErrBadResponse)
	}
	var budget int64 = multipartSlack
	left := 0
	for _, i := range idx {
		if !d.done(i) {
			budget += d.spans[i].Length + multipartSlack
			left++
		}
	}
	counted := &iox.CountingReader{R: io.LimitReader(body, budget)}
	mr := multipart.NewReader(counted, boundary)
	for ; left > 0; left-- {
		// NextRawPart, unlike NextPart, does not undo a
		// Content-Transfer-Encoding: byte ranges are raw bytes.
		part, err := mr.NextRawPart()
		if err == io.EOF {
			return counted.N, fmt.Errorf("fetcher: %s: multipart response lacks %d of the ranges asked: %w", f.where(), left, ErrBadResponse)
		}
		if err != nil {
			return counted.N, retryable(fmt.Errorf("fetcher: %s: multipart response: %w", f.where(), err), 0)
		}
		got, total, err := parseContentRange(part.Header.Get("Content-Range"))
		if err != nil {
			return counted.N, err
		}
		i := d.spanIndex(idx, got)
		if i < 0 || total >= 0 && total != f.size.Load() {
			return counted.N, fmt.Errorf("fetcher: %s: multipart part with Content-Range %q was not asked for: %w",
				f.where(), part.Header.Get("Content-Range"), ErrBadContentRange)
		}
		// The part is read whole, not streamed like a single range: its
		// length is only known to be right at its end.
		m, err := io.ReadFull(part, d.buf(i))
		if err != nil {
			d.filled[i] = 0 // a retry asks for the whole span again
			return counted.N, bodyError(f, got, err)
		}
		if n, _ := part.Read(make([]byte, 1)); n > 0 {
			return counted.N, fmt.Errorf("fetcher: %s: multipart part %v longer than its Content-Range: %w", f.where(), got, ErrBadResponse)
		}
		d.filled[i] = int64(m)
		if err := d.hand(i); err != nil {
			return counted.N, err
		}
	}
	return counted.N, nil
}
