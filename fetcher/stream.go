package fetcher

import (
	"io"
	"slices"
)

// streamChunk is how much of a response body a stream reads at a time.
const streamChunk = 64 << 10

// stream is a response body of consecutive blob bytes, [pos, limit) from
// where it has got to, that fills the spans of the jobs subscribed to it:
// a job whose spans it has still to pass need not ask for them. An answer
// of the whole blob serves every job so, and the blob is downloaded once
// for all of them. Its fields are guarded by gate.mu.
type stream struct {
	pos, limit int64
	owner      *job   // the job whose request it answers, which reads it
	subs       []*job // owner first
	closed     bool
}

// newStream returns a stream of [pos, limit) that owner reads, once
// gate.answered has accepted it.
func newStream(owner *job, pos, limit int64) *stream {
	return &stream{pos: pos, limit: limit, owner: owner, subs: []*job{owner}}
}

// need returns the offset span i of j needs next, and whether s can
// still give it.
func (s *stream) need(j *job, i int) (int64, bool) {
	sp := j.d.spans[i]
	at := sp.Offset + j.d.filled[i]
	return at, at < sp.End() && at >= s.pos && at < s.limit
}

// accepts tells whether s can serve every unread span of j.
func (s *stream) accepts(j *job) bool {
	left := j.left()
	if s.closed || len(left) == 0 {
		return false
	}
	_, ok := s.need(j, left[0])
	return ok && j.d.spans[left[len(left)-1]].End() <= s.limit
}

// plan releases the subscribers s can give nothing more and returns the
// first offset another needs and the end of what they need from s; ok is
// false when none needs anything.
func (s *stream) plan() (next, last int64, ok bool) {
	next = s.limit
	kept := s.subs[:0]
	for _, j := range s.subs {
		served := false
		for _, i := range j.idx {
			if at, ok := s.need(j, i); ok {
				next, last, served = min(next, at), max(last, min(j.d.spans[i].End(), s.limit)), true
			}
		}
		if served {
			kept = append(kept, j)
		} else {
			s.release(j)
		}
	}
	clear(s.subs[len(kept):])
	s.subs = kept
	return next, last, len(kept) > 0
}

// release ends j's subscription, which is off s.subs, with j.err.
func (s *stream) release(j *job) {
	if j.stop != nil {
		j.stop()
		j.stop = nil
	}
	if j != s.owner {
		j.done <- j.err
	}
}

// read reads body, which holds the blob's bytes from s.pos, and hands
// every subscriber of s the bytes of its spans, until none needs more of
// it: an endless body costs nothing extra. It returns the bytes read and
// the owner's outcome; if the body broke while some subscriber still
// needed it, that subscriber gets the error too, which is worth a retry.
func (f *HTTP) read(s *stream, body io.Reader) (int64, error) {
	g := f.gate
	buf := make([]byte, max(min(streamChunk, s.limit-s.pos), 0))
	var n int64
	var readErr error
	for {
		g.mu.Lock()
		next, last, ok := s.plan()
		var broke error
		if ok && readErr != nil {
			broke = bodyError(f, Range{Offset: s.pos, Length: last - s.pos}, readErr)
		}
		if !ok || broke != nil {
			s.closed = true
			if i := slices.Index(g.streams, s); i >= 0 {
				g.streams = slices.Delete(g.streams, i, i+1)
			}
			for _, j := range s.subs {
				if j.err == nil {
					j.err = broke
				}
				s.release(j)
			}
			s.subs = nil
			err := s.owner.err
			g.mu.Unlock()
			if err == nil {
				err = broke
			}
			return n, err
		}
		want := min(int64(len(buf)), last-s.pos)
		if next > s.pos {
			want = min(want, next-s.pos) // bytes nobody needs: skipped
		}
		g.mu.Unlock()

		m, err := body.Read(buf[:want])
		n += int64(m)
		g.mu.Lock()
		at := s.pos
		s.pos += int64(m)
		var targets []*job
		for _, j := range s.subs {
			for _, i := range j.idx {
				if need, _ := s.need(j, i); need >= at && need < s.pos && !j.d.done(i) {
					j.busy = true
					targets = append(targets, j)
					break
				}
			}
		}
		g.mu.Unlock()

		// Outside the lock: fn may take its time, and other jobs may
		// subscribe meanwhile from beyond s.pos.
		errs := make([]error, len(targets))
		for k, j := range targets {
			for _, i := range j.idx {
				if errs[k] = j.d.put(i, at, buf[:m]); errs[k] != nil {
					break
				}
			}
		}

		g.mu.Lock()
		for k, j := range targets {
			j.busy = false
			j.err = errs[k]
			if j.cancelled && j.err == nil {
				j.err = j.ctx.Err()
			}
			if j.err != nil {
				s.subs = slices.DeleteFunc(s.subs, func(k *job) bool { return k == j })
				s.release(j)
			}
		}
		g.mu.Unlock()
		readErr = err
	}
}
