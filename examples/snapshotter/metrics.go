package snapshotter

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/prometheus/client_golang/prometheus"
)

// Why a request to the registry was made, as the metrics label it.
const (
	causeOnDemand   = "on-demand"  // a read of a mounted layer
	causePrefetch   = "prefetch"   // the image's prefetch plan
	causeBackground = "background" // the rest of a layer, fetched at low priority
	causeMetadata   = "metadata"   // manifests, configs, layer indexes
)

type causeKey struct{}

func withCause(ctx context.Context, cause string) context.Context {
	return context.WithValue(ctx, causeKey{}, cause)
}

func causeOf(ctx context.Context) string {
	if c, ok := ctx.Value(causeKey{}).(string); ok {
		return c
	}
	return causeMetadata
}

// metrics are the snapshotter's Prometheus collectors.
type metrics struct {
	bytes     *prometheus.CounterVec
	requests  *prometheus.CounterVec
	firstRead prometheus.Histogram
	planned   prometheus.Counter
	done      prometheus.Counter
	mounts    prometheus.Gauge
	pending   prometheus.Gauge
	// The stages of a cold start: opening an image (manifest, config,
	// every layer's index), mounting one layer, fetching the prefetch
	// plan.
	openTime, mountTime, prefetchTime prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, chunks *cache.Tiered, memory *cache.Memory, disk *cache.Dir) *metrics {
	m := &metrics{
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lazylayer_fetch_bytes_total",
			Help: "Bytes received from registries, by why they were asked for.",
		}, []string{"cause"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lazylayer_fetch_requests_total",
			Help: "HTTP requests made to registries, by why.",
		}, []string{"cause"}),
		firstRead: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lazylayer_first_read_seconds",
			Help:    "Time from the first read of a chunk to its verified bytes.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		planned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lazylayer_prefetch_planned_bytes_total",
			Help: "Compressed bytes the images' prefetch plans asked for.",
		}),
		done: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lazylayer_prefetch_done_bytes_total",
			Help: "Compressed bytes of the prefetch plans fetched; over planned, the prefetch coverage.",
		}),
		mounts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lazylayer_mounted_layers",
			Help: "Layers mounted lazily through FUSE.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lazylayer_layers_fetching",
			Help: "Layers being prefetched or fetched in the background; at 0 every mounted layer is cached whole.",
		}),
		openTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lazylayer_image_open_seconds",
			Help:    "Time to open an image: its manifest, config and every layer's index.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		mountTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lazylayer_mount_seconds",
			Help:    "Time to mount one opened layer through FUSE.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8),
		}),
		prefetchTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lazylayer_prefetch_seconds",
			Help:    "Time from the first mount of an image to its prefetch plan in the cache.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
	}
	// Lookups count in both tiers; what is stored, on disk.
	lookups := func(f func(cache.Stats) float64) func() float64 {
		return func() float64 { return f(chunks.Stats()) }
	}
	stored := func(f func(cache.Stats) float64) func() float64 {
		return func() float64 { return f(disk.Stats()) }
	}
	reg.MustRegister(m.bytes, m.requests, m.firstRead, m.planned, m.done, m.mounts, m.pending,
		m.openTime, m.mountTime, m.prefetchTime,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lazylayer_cache_hits_total", Help: "Chunk cache lookups that hit, in memory or on disk."},
			lookups(func(s cache.Stats) float64 { return float64(s.Hits) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lazylayer_cache_misses_total", Help: "Chunk cache lookups that missed."},
			lookups(func(s cache.Stats) float64 { return float64(s.Misses) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lazylayer_cache_hit_ratio", Help: "Hits over lookups of the chunk cache since start."},
			lookups(func(s cache.Stats) float64 {
				if s.Hits+s.Misses == 0 {
					return 0
				}
				return float64(s.Hits) / float64(s.Hits+s.Misses)
			})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lazylayer_cache_bytes", Help: "Bytes the chunk cache holds on disk."},
			stored(func(s cache.Stats) float64 { return float64(s.Bytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lazylayer_memory_cache_bytes", Help: "Bytes of chunks kept in memory over the disk cache."},
			func() float64 { return float64(memory.Stats().Bytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lazylayer_cache_verify_failures_total", Help: "Cached chunks found damaged, dropped and fetched again."},
			stored(func(s cache.Stats) float64 { return float64(s.VerifyFailures) })),
	)
	return m
}

// observeAccess records the first read of a chunk.
func (m *metrics) observeAccess(a reader.Access) {
	if a.Err == nil {
		m.firstRead.Observe(a.Duration.Seconds())
	}
}

// prefetchProgress returns a progress callback that adds what one
// prefetch did since its previous report.
func (m *metrics) prefetchProgress() prefetch.RunOption {
	var mu sync.Mutex
	var planned, done int64
	return prefetch.WithProgress(func(p prefetch.Progress) {
		mu.Lock()
		defer mu.Unlock()
		m.planned.Add(float64(max(p.Bytes-planned, 0)))
		m.done.Add(float64(max(p.BytesDone-done, 0)))
		planned, done = max(planned, p.Bytes), max(done, p.BytesDone)
	})
}

// transport counts requests and response bytes by the cause their
// context carries, and tells the demand gauge of on-demand and prefetch
// requests.
type transport struct {
	next   http.RoundTripper
	m      *metrics
	demand *demand
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	cause := causeOf(req.Context())
	t.m.requests.WithLabelValues(cause).Inc()
	done := func() {}
	if cause == causeOnDemand || cause == causePrefetch {
		done = t.demand.start(cause == causeOnDemand)
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		done()
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, c: t.m.bytes.WithLabelValues(cause), done: sync.OnceFunc(done)}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	c    prometheus.Counter
	done func()
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.Add(float64(n))
	if err != nil {
		b.done()
	}
	return n, err
}

func (b *countingBody) Close() error {
	b.done()
	return b.ReadCloser.Close()
}

// demand tells whether containers are waiting for the registry: the
// background fetch, which would compete with them for the link, waits
// until no on-demand request has been under way for a while, and then
// yields to every on-demand or prefetch request and is paced.
type demand struct {
	rate float64 // bytes per second of the paced background fetch

	mu       sync.Mutex
	inFlight int           // on-demand and prefetch requests under way
	started  int           // on-demand requests ever started
	last     time.Time     // when the last request in flight ended
	quiet    chan struct{} // closed and replaced when inFlight drops to 0
	next     time.Time     // when the paced background fetch may go on
}

func newDemand(rate float64) *demand { return &demand{rate: rate, quiet: make(chan struct{})} }

// start notes an on-demand request (onDemand) or a prefetch request; the
// function it returns notes its end.
func (d *demand) start(onDemand bool) func() {
	d.mu.Lock()
	d.inFlight++
	if onDemand {
		d.started++
	}
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.inFlight--
		d.last = time.Now()
		if d.inFlight == 0 {
			close(d.quiet)
			d.quiet = make(chan struct{})
		}
	}
}

// count returns how many on-demand requests were ever started.
func (d *demand) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.started
}

// missed reports whether misses on-demand requests have started after
// the count from (see count): the prefetch plan did not hold what the
// containers read.
func (d *demand) missed(from, misses int) bool { return d.started-from >= misses }

// waitQuiet returns once no request has been under way for the period
// quiet, nor since the time since, or once the plan missed (see missed),
// or when ctx is done.
func (d *demand) waitQuiet(ctx context.Context, since time.Time, quiet time.Duration, from, misses int) error {
	return d.await(ctx, func(now time.Time) (bool, time.Duration) {
		if d.missed(from, misses) {
			return true, 0
		}
		return d.idleFor(now, quiet-now.Sub(later(d.last, since)))
	})
}

// admit returns when the background fetch may ask for size more bytes:
// once no on-demand or prefetch request is under way, and the pace of
// d.rate leaves room for them; or at once if the plan missed (see
// missed), which leaves containers to a round trip per file, and
// fetching the layers at the link's speed beats that.
func (d *demand) admit(ctx context.Context, size int64, from, misses int) error {
	missed := false
	err := d.await(ctx, func(now time.Time) (bool, time.Duration) {
		if missed = d.missed(from, misses); missed {
			return true, 0
		}
		return d.idleFor(now, d.next.Sub(now))
	})
	if err == nil && !missed {
		d.mu.Lock()
		d.next = later(d.next, time.Now()).Add(time.Duration(float64(size) / d.rate * float64(time.Second)))
		d.mu.Unlock()
	}
	return err
}

// idleFor tells an await whether no request is under way and left, the
// time still to wait, is over. d.mu is held.
func (d *demand) idleFor(now time.Time, left time.Duration) (bool, time.Duration) {
	if d.inFlight > 0 {
		return false, 0
	}
	return left <= 0, left
}

// await returns once ready, called with d.mu held, says so, or when ctx
// is done. ready is asked again when no request is in flight any more,
// and after the time it returned, if positive.
func (d *demand) await(ctx context.Context, ready func(now time.Time) (bool, time.Duration)) error {
	for {
		d.mu.Lock()
		ok, left := ready(time.Now())
		ch := d.quiet
		d.mu.Unlock()
		if ok {
			return nil
		}
		var timeout <-chan time.Time
		if left > 0 {
			timeout = time.After(left)
		}
		select {
		case <-ch:
		case <-timeout:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
