package fetcher

import (
	"context"
	"slices"
	"sync"
)

// support is what a host is known to do with single ranges.
type support int8

const (
	unknown support = iota
	supported
	unsupported
)

// multiSupport is what a host is known to do with multi-range requests.
type multiSupport int8

const (
	multiUnknown   multiSupport = iota
	multiSupported              // a multipart 206
	multiRefused                // 400, 416, or one of the ranges
	multiWhole                  // 200 with the whole blob: a host that may ignore Range altogether
)

// hostSupport is what one host does with range requests.
type hostSupport struct {
	ranges support
	multi  multiSupport
}

// answer is what a host did with a range request, as far as the gate
// learns from it.
type answer int8

const (
	rangeServed   answer = iota // 206 to one range
	multiServed                 // multipart 206 to several ranges
	onePartServed               // 206 with one of several ranges asked
	multiRejected               // 400 or 416 to several ranges
	wholeForMulti               // 200, the whole blob, to several ranges
	wholeForRange               // 200, the whole blob, to one range
)

// step is what a job does next.
type step int8

const (
	stepNone   step = iota // not decided yet
	stepDone               // every span is read
	stepWait               // parked until an answer awaited comes in
	stepSingle             // a single-range request for the first unread span, or a run's spans
	stepMulti              // one multi-range request for every unread span
	stepWhole              // one range from the first unread byte to the last: the host sends the whole blob anyway
	stepSplit              // a single-range request per span, in parallel
	stepStream             // served by a whole-blob answer another job reads
)

// job is one goroutine's share of a Fetch: spans of a delivery to read.
type job struct {
	ctx  context.Context
	d    *delivery
	idx  []int      // spans of d, by offset
	run  bool       // its spans are read with one range from the first to the last
	wake chan step  // a parked job's next step
	done chan error // a job served by another's stream: the outcome

	// Guarded by gate.mu.
	probe     bool               // parked jobs wait for the answer to its request
	abort     context.CancelFunc // its request, in flight, may be answered with the whole blob
	adopted   bool               // its request was aborted: a stream serves it instead
	busy      bool               // a stream is handing it bytes
	cancelled bool               // its context ended while busy
	err       error              // its outcome in a stream
	stop      func() bool        // ends the watch on ctx of a job served by another's stream
}

func newJob(ctx context.Context, d *delivery, idx []int, run bool) *job {
	return &job{ctx: ctx, d: d, idx: idx, run: run, wake: make(chan step, 1), done: make(chan error, 1)}
}

// left returns the spans of j not read in full.
func (j *job) left() []int {
	var left []int
	for _, i := range j.idx {
		if !j.d.done(i) {
			left = append(left, i)
		}
	}
	return left
}

// gate decides which requests a fetcher sends, from what it has learnt
// of its hosts' range support, so that the blob is downloaded whole at
// most once however a host answers (outside of failures), and few
// requests are wasted on learning.
//
// Until a host has answered a multi-range request, one multi-range
// request is out and others wait for its answer. A host that refuses them
// (400, 416, or one range back) is sent one single range per span, in
// parallel. A host that answers them with the whole blob may ignore
// ranges altogether: its answer is dropped, and one single range is sent
// and others wait, until its answer tells. A whole-blob answer to a
// single range is read once for every job waiting or in flight, whose
// requests are aborted, and then for every job that needs bytes it has
// not passed yet. What is learnt is kept per host for the fetcher's
// lifetime, a redirect's target host apart from the registry's (up to
// maxHosts of them).
type gate struct {
	mu       sync.Mutex
	hosts    map[string]*hostSupport
	route    string // the host of the latest answer: where requests end up
	probing  bool   // a job's request is out whose answer parked jobs wait for
	parked   []*job // in arrival order
	inflight []*job // with requests whose answer may be the whole blob
	streams  []*stream

	shared *HostTable // nil, or where what is learnt is also kept

	parkHook func() // for tests: called, locked, as a job parks
}

func newGate(host string, shared *HostTable) *gate {
	return &gate{hosts: make(map[string]*hostSupport), route: host, shared: shared}
}

// HostTable remembers what hosts do with range requests for every fetcher
// given it with WithHostTable, so that a fetcher of one blob starts with
// what fetchers of other blobs on the same hosts learnt. It keeps up to
// MaxSharedHosts hosts, and forgets them all when more come. It is safe
// for concurrent use.
type HostTable struct {
	mu    sync.Mutex
	hosts map[string]hostSupport
}

// MaxSharedHosts bounds the hosts a HostTable remembers.
const MaxSharedHosts = 1024

// NewHostTable returns an empty table.
func NewHostTable() *HostTable { return &HostTable{hosts: make(map[string]hostSupport)} }

func (t *HostTable) load(name string) hostSupport {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hosts[name]
}

func (t *HostTable) store(name string, h hostSupport) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.hosts[name]; !ok && len(t.hosts) >= MaxSharedHosts {
		clear(t.hosts)
	}
	t.hosts[name] = h
}

// maxHosts bounds the hosts a gate remembers: a registry could redirect
// every request to another.
const maxHosts = 16

func (g *gate) host(name string) *hostSupport {
	h := g.hosts[name]
	if h == nil {
		if len(g.hosts) >= maxHosts {
			clear(g.hosts) // learn again
		}
		h = new(hostSupport)
		if g.shared != nil {
			*h = g.shared.load(name)
		}
		g.hosts[name] = h
	}
	return h
}

// ignoresRanges tells whether the host requests end up at answers every
// range with the whole blob.
func (g *gate) ignoresRanges() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.host(g.route).ranges == unsupported
}

// decide returns j's next step.
func (g *gate) decide(j *job) step {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.decideLocked(j)
}

func (g *gate) decideLocked(j *job) step {
	left := j.left()
	if len(left) == 0 {
		return stepDone
	}
	for _, s := range g.streams {
		if s.accepts(j) {
			g.adopt(s, j)
			return stepStream
		}
	}
	h := g.host(g.route)
	// Single ranges go freely to a host not suspected of ignoring them.
	if h.ranges == supported || h.ranges == unknown && h.multi != multiWhole {
		switch {
		case len(left) == 1 || j.run:
			return stepSingle
		case h.multi == multiSupported:
			return stepMulti
		case h.multi != multiUnknown:
			return stepSplit
		}
	}
	// The answer may be the whole blob, or one that says what to send
	// instead: one such request at a time.
	if g.probing {
		g.parked = append(g.parked, j)
		if g.parkHook != nil {
			g.parkHook()
		}
		return stepWait
	}
	g.probing, j.probe = true, true
	switch {
	case h.ranges == unsupported:
		return stepWhole
	case len(left) > 1 && h.multi == multiUnknown:
		return stepMulti
	}
	return stepSingle
}

// wait waits for a parked job's next step.
func (g *gate) wait(ctx context.Context, j *job) (step, error) {
	select {
	case st := <-j.wake:
		return st, nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	if i := slices.Index(g.parked, j); i >= 0 {
		g.parked = slices.Delete(g.parked, i, i+1)
		g.mu.Unlock()
		return stepNone, ctx.Err()
	}
	g.mu.Unlock()
	// Its step was decided as ctx ended: undo it.
	if <-j.wake == stepStream {
		<-j.done // the stream lets go of a job whose context ended at once
	}
	g.settle(j, false)
	return stepNone, ctx.Err()
}

// sending registers j's request, which abort aborts, before it is sent:
// if the answer to another is the whole blob, j is served from that.
func (g *gate) sending(j *job, abort context.CancelFunc) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.host(g.route).ranges != supported {
		j.abort = abort
		g.inflight = append(g.inflight, j)
	}
}

// answered records what host did with j's request, before its answer is
// read. It returns false if j's request was aborted meanwhile: j's
// answer must not be read. A single-range answer goes to s, which j
// reads and other jobs may subscribe to; if it is the whole blob, every
// job parked or in flight is subscribed.
func (g *gate) answered(j *job, host string, a answer, s *stream) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if j.adopted {
		return false
	}
	g.landed(j)
	h := g.host(host)
	g.route = host
	switch a {
	case rangeServed:
		h.ranges = supported
	case multiServed:
		h.ranges, h.multi = supported, multiSupported
	case onePartServed:
		h.ranges, h.multi = supported, multiRefused
	case multiRejected:
		h.multi = multiRefused
	case wholeForMulti:
		h.multi = multiWhole
	case wholeForRange:
		h.ranges = unsupported
		for _, k := range g.inflight {
			k.abort()
			k.abort, k.adopted = nil, true
			if k.probe {
				k.probe, g.probing = false, false
			}
			g.adopt(s, k)
		}
		g.inflight = nil
		for _, k := range g.parked {
			g.adopt(s, k)
			k.wake <- stepStream
		}
		g.parked = nil
	}
	if g.shared != nil {
		g.shared.store(host, *h)
	}
	if s != nil {
		j.err, j.cancelled = nil, false
		g.streams = append(g.streams, s)
	}
	if j.probe {
		j.probe, g.probing = false, false
	}
	if a != multiRejected && a != wholeForMulti {
		// Otherwise j, whose answer is dropped, decides first (settle).
		g.reconsider()
	}
	return true
}

// landed takes j's request off the in-flight list.
func (g *gate) landed(j *job) {
	if j.abort != nil {
		j.abort = nil
		g.inflight = slices.DeleteFunc(g.inflight, func(k *job) bool { return k == j })
	}
}

// settle ends j's request. If a stream took the job over, it returns
// stepStream; else, if redecide, j's next step, decided before the parked
// jobs', which may wait for j's next request.
func (g *gate) settle(j *job, redecide bool) step {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.landed(j)
	if j.adopted {
		j.adopted = false
		return stepStream
	}
	if j.probe { // no answer came to learn from
		j.probe, g.probing = false, false
	}
	next := stepNone
	if redecide {
		next = g.decideLocked(j)
	}
	g.reconsider()
	return next
}

// reconsider decides again for every parked job, after the gate learnt
// something or a probe ended.
func (g *gate) reconsider() {
	parked := g.parked
	g.parked = nil
	for _, j := range parked {
		if st := g.decideLocked(j); st != stepWait {
			j.wake <- st
		}
	}
}

// adopt subscribes j to s; the caller has j learn it (stepStream).
func (g *gate) adopt(s *stream, j *job) {
	s.subs = append(s.subs, j)
	j.err, j.cancelled = nil, false
	j.stop = context.AfterFunc(j.ctx, func() { g.detach(s, j) })
}

// detach takes j, whose context ended, off s: at once, or after the
// bytes s is handing it.
func (g *gate) detach(s *stream, j *job) {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := slices.Index(s.subs, j)
	if i < 0 {
		return
	}
	if j.busy {
		j.cancelled = true
		return
	}
	s.subs = slices.Delete(s.subs, i, i+1)
	j.err = j.ctx.Err()
	s.release(j)
}
