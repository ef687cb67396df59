package simregistry

import (
	"context"
	"net/http"
	"sync"
	"time"
)

const (
	// sliceSize is the most response body the pipe releases at once: small
	// enough that parallel responses interleave finely, large enough that
	// 50 MB/s needs only ~1500 wake-ups a second.
	sliceSize = 32 << 10
	// pacingSlack is how late a writer may wake and still continue from
	// its deadline instead of from now: it absorbs sleep jitter without
	// letting an idle pipe bank credit for a burst.
	pacingSlack = 2 * time.Millisecond
	// maxLog bounds the per-request log kept in Stats.
	maxLog = 100_000
)

// Request is one request as the shaped link saw it.
type Request struct {
	Method string // "GET", "HEAD", ...
	Path   string // the URL path, without the query
	// Range is the request's Range header, empty when it had none.
	Range string
	// Status is the response's status code; 200 until the handler sets
	// another.
	Status int
	// Bytes is the response body bytes sent.
	Bytes int64
	// Start is when the request arrived; Duration runs until its
	// response was complete, and is zero while it is in flight.
	Start    time.Time
	Duration time.Duration
}

// Stats counts the traffic through a shaped link since it started or since
// the last ResetStats. Requests are counted as they arrive and body bytes
// as they are handed to the socket, so a client that has received a
// response always finds it counted.
type Stats struct {
	// Requests is the number of requests received.
	Requests int
	// Bytes is the response body bytes sent, summed over requests.
	Bytes int64
	// Log lists the requests in arrival order; it keeps at most the
	// first 100,000.
	Log []Request
}

// FaultFunc decides, after a request has paid its round trip, whether it
// fails: a non-zero status is sent as the response instead of the real
// one, with an empty body. It may be called concurrently.
type FaultFunc func(r *http.Request) (status int)

// shaper wraps handlers so that their traffic crosses one simulated link.
// It is safe for concurrent use.
type shaper struct {
	link  Link
	fault FaultFunc

	mu    sync.Mutex
	free  time.Time // when the pipe has sent everything reserved so far
	stats Stats     // totals; Log unused
	log   []*Request
}

// wrap returns h behind the shaper's link.
func (s *shaper) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		req := s.begin(Request{
			Method: r.Method,
			Path:   r.URL.Path,
			Range:  r.Header.Get("Range"),
			Status: http.StatusOK,
			Start:  start,
		})
		defer s.update(func() { req.Duration = time.Since(start) })
		if err := sleepUntil(r.Context(), start.Add(s.link.RTT)); err != nil {
			return // the client gave up while the request was in flight
		}
		sw := &shapedWriter{ResponseWriter: w, s: s, ctx: r.Context(), req: req}
		if status := s.faultFor(r); status != 0 {
			sw.WriteHeader(status)
			return
		}
		h.ServeHTTP(sw, r)
	})
}

func (s *shaper) faultFor(r *http.Request) int {
	if s.fault == nil {
		return 0
	}
	return s.fault(r)
}

// reserve books n bytes on the pipe and returns when they have been sent.
func (s *shaper) reserve(n int) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	start := s.free
	// A writer that woke a little late continues from its deadline, so
	// jitter does not accumulate; a pipe idle for longer starts afresh,
	// with no credit for the idle time.
	if start.Before(now.Add(-pacingSlack)) {
		start = now
	}
	s.free = start.Add(s.link.TransferTime(int64(n)))
	return s.free
}

// begin counts a request as it arrives and returns its live log entry.
func (s *shaper) begin(req Request) *Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests++
	p := &req
	if len(s.log) < maxLog {
		s.log = append(s.log, p)
	}
	return p
}

// update runs f, which changes counters or a log entry, under the lock.
func (s *shaper) update(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *shaper) snapshot() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Log = make([]Request, len(s.log))
	for i, r := range s.log {
		st.Log[i] = *r
	}
	return st
}

func (s *shaper) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{}
	s.log = nil
}

// shapedWriter paces a response body through the shaper's pipe and
// counts it.
type shapedWriter struct {
	http.ResponseWriter
	s   *shaper
	ctx context.Context
	req *Request
}

// WriteHeader sends the header at once, as a server on the network
// would, so that a client sees the status even if the body then breaks
// off (a proxied upstream's truncated response, for one).
func (w *shapedWriter) WriteHeader(status int) {
	w.s.update(func() { w.req.Status = status })
	w.ResponseWriter.WriteHeader(status)
	w.Flush()
}

// Write sends p in slices, each when the pipe has carried it.
func (w *shapedWriter) Write(p []byte) (int, error) {
	if w.s.link.Bandwidth <= 0 {
		return w.send(p)
	}
	written := 0
	for len(p) > 0 {
		n := min(len(p), sliceSize)
		if err := sleepUntil(w.ctx, w.s.reserve(n)); err != nil {
			return written, err
		}
		m, err := w.send(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		// Hand the slice to the socket now, not when a buffer fills, so
		// the client sees it at its deadline.
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		p = p[n:]
	}
	return written, nil
}

// send writes p, counting its bytes before they leave: a client that has
// read them must find them in Stats.
func (w *shapedWriter) send(p []byte) (int, error) {
	w.count(len(p))
	n, err := w.ResponseWriter.Write(p)
	if n < len(p) {
		w.count(n - len(p))
	}
	return n, err
}

func (w *shapedWriter) count(n int) {
	w.s.update(func() {
		w.req.Bytes += int64(n)
		w.s.stats.Bytes += int64(n)
	})
}

// Flush implements http.Flusher for handlers that stream.
func (w *shapedWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *shapedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// sleepUntil waits until deadline or until ctx is done.
func sleepUntil(ctx context.Context, deadline time.Time) error {
	d := time.Until(deadline)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
