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

// Waves counts the requests of the log that started while no earlier one
// was in flight: the round trips on the critical path. A request still in
// flight (Duration zero) keeps the link busy past every later start: its
// client may already hold the whole response while its handler has not
// yet returned.
func (st Stats) Waves() int {
	n := 0
	var busyUntil time.Time
	inFlight := false
	for _, r := range st.Log { // in arrival order
		if !inFlight && !r.Start.Before(busyUntil) {
			n++
		}
		if r.Duration == 0 {
			inFlight = true
		} else if end := r.Start.Add(r.Duration); end.After(busyUntil) {
			busyUntil = end
		}
	}
	return n
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
		sw := newShapedWriter(w, s, r.Context(), req)
		if status := s.faultFor(r); status != 0 {
			sw.WriteHeader(status)
			return
		}
		defer sw.finish()
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
// A backlogged sender is one whose response had more bytes waiting when
// it sent its last slice.
func (s *shaper) reserve(n int, backlogged bool) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	start := s.free
	// A writer that woke a little late continues from its deadline, so
	// jitter does not accumulate; a backlogged one continues as long as
	// its send buffer could have kept the pipe busy. A pipe idle for
	// longer starts afresh, with no credit for the idle time.
	slack := pacingSlack
	if backlogged {
		slack = max(slack, s.link.TransferTime(sendBuffer))
	}
	if start.Before(now.Add(-slack)) {
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
// counts it. The handler's writes go to a buffer, as a server's go to its
// socket's send buffer, and a sender goroutine drains it onto the pipe
// in slices: many small writes (the part headers and small parts of a
// multi-range answer) cost the link their bytes, not a sleep and a flush
// each. The handler blocks while sendBuffer bytes wait.
type shapedWriter struct {
	http.ResponseWriter
	s   *shaper
	ctx context.Context
	req *Request

	out sync.Mutex // serialises use of the ResponseWriter

	mu      sync.Mutex
	cond    sync.Cond
	pending []byte // written by the handler, not yet sent
	closed  bool   // the handler has returned
	err     error  // sending failed; the handler's next write returns it
	sending bool   // the sender goroutine runs
	sent    chan struct{}
}

// sendBuffer is how many body bytes a response may have waiting for the
// pipe: a TCP send buffer, which must hold at least the link's
// bandwidth-delay product (1 MB at 50 MB/s and 20 ms) for one connection
// to fill the link. While a response has bytes waiting, a sender that
// wakes late continues from the pipe's last deadline if the buffer could
// have covered the delay, as the socket would have kept sending.
const sendBuffer = 1 << 20

func newShapedWriter(w http.ResponseWriter, s *shaper, ctx context.Context, req *Request) *shapedWriter {
	sw := &shapedWriter{ResponseWriter: w, s: s, ctx: ctx, req: req, sent: make(chan struct{})}
	sw.cond.L = &sw.mu
	return sw
}

// WriteHeader sends the header at once, as a server on the network
// would, so that a client sees the status even if the body then breaks
// off (a proxied upstream's truncated response, for one).
func (w *shapedWriter) WriteHeader(status int) {
	w.s.update(func() { w.req.Status = status })
	w.out.Lock()
	defer w.out.Unlock()
	w.ResponseWriter.WriteHeader(status)
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Write queues p for the pipe, waiting while the send buffer is full.
func (w *shapedWriter) Write(p []byte) (int, error) {
	if w.s.link.Bandwidth <= 0 {
		w.out.Lock()
		defer w.out.Unlock()
		return w.send(p)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.pending) >= sendBuffer && w.err == nil {
		w.cond.Wait()
	}
	if w.err != nil {
		return 0, w.err
	}
	w.pending = append(w.pending, p...)
	if !w.sending {
		w.sending = true
		go w.drain()
	}
	w.cond.Broadcast()
	return len(p), nil
}

// drain sends the pending bytes in slices, each when the pipe has carried
// it, until the handler has returned and nothing is left.
func (w *shapedWriter) drain() {
	defer close(w.sent)
	buf := make([]byte, sliceSize)
	backlogged := false
	for {
		w.mu.Lock()
		for len(w.pending) == 0 && !w.closed {
			backlogged = false
			w.cond.Wait()
		}
		if len(w.pending) == 0 {
			w.mu.Unlock()
			return
		}
		n := copy(buf, w.pending)
		w.pending = w.pending[n:]
		w.cond.Broadcast()
		w.mu.Unlock()

		err := sleepUntil(w.ctx, w.s.reserve(n, backlogged))
		if err == nil {
			w.out.Lock()
			_, err = w.send(buf[:n])
			// Hand the slice to the socket now, not when a buffer
			// fills, so the client sees it at its deadline.
			if f, ok := w.ResponseWriter.(http.Flusher); ok && err == nil {
				f.Flush()
			}
			w.out.Unlock()
		}
		if err != nil {
			w.mu.Lock()
			w.err, w.pending = err, nil
			w.cond.Broadcast()
			w.mu.Unlock()
			return
		}
		backlogged = true
	}
}

// finish waits until the body the handler wrote has been sent or the
// sending failed. The handler must have returned.
func (w *shapedWriter) finish() {
	w.mu.Lock()
	w.closed = true
	w.cond.Broadcast()
	sending := w.sending
	w.mu.Unlock()
	if sending {
		<-w.sent
	}
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

// Flush implements http.Flusher for handlers that stream. Queued bytes
// leave as fast as the pipe carries them anyway.
func (w *shapedWriter) Flush() {}

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
