package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/overlay"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/toc/soci"
	"github.com/lazylayer/lazylayer/writer"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	// cacheBytes bounds each lazy run's chunk cache; it holds the trace.
	cacheBytes = 1 << 30
	// fetchConnections and fetchPolicy configure the HTTP fetcher of the
	// lazy modes: a prefetch asks for a few hundred scattered frames, and
	// should do so in a handful of multi-range requests all in flight at
	// once, not in dozens queued behind four connections.
	fetchConnections = 8
)

// fetchPolicy merges frames 4 KiB apart into a span of a multi-range
// request, where another span costs ~100 bytes, and frames 64 KiB apart
// into one single-range request on a registry that serves one range per
// request, where another request costs a round trip.
func fetchPolicy() fetcher.CoalescePolicy {
	return fetcher.CoalescePolicy{MaxGap: 4 << 10, MaxRequestSize: 64 << 20, MaxSpansPerRequest: 1024, SingleRangeGap: 64 << 10}
}

// lazyBlob is a layer blob in the registry that opens lazily, with what a
// client holding the layer descriptor knows of it.
type lazyBlob struct {
	blobInfo
	// built describes a blob the writer made (eStargz, zstd:chunked):
	// its TOC digest and annotations. Nil for a plain gzip layer.
	built *writer.Result
	// ztoc is a plain gzip layer's zTOC, a blob of its own in the
	// registry, as a SOCI index lists it: each run fetches it on its
	// clock, in one request.
	ztoc blobInfo
	// needed is the compressed bytes a lazy reader of the blob must
	// fetch to read the trace: the frames (or spans) that hold the
	// trace's files, and the zTOC, which the blob does not hold.
	needed int64
	// chunkNeeded, for a gzip layer, is what the eStargz blob of the
	// same tree needs: the trace at the granularity of chunks, not of
	// spans.
	chunkNeeded int64
}

// buildLazy builds the layer with opts (eStargz unless writer.WithFormat
// says otherwise) and pushes it.
func buildLazy(ctx context.Context, env *Env, opts ...writer.Option) (*lazyBlob, error) {
	tr, err := env.OpenTar()
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	var buf bytes.Buffer
	res, err := writer.Build(ctx, &buf, tr, opts...)
	if err != nil {
		return nil, fmt.Errorf("build lazy layer: %w", err)
	}
	if _, err := env.Registry.Push(ctx, env.Repo, buf.Bytes()); err != nil {
		return nil, err
	}
	b := &lazyBlob{blobInfo: blobInfo{res.Digest, res.Size}, built: res}
	return b, b.measure(ctx, env, bytes.NewReader(buf.Bytes()), nil)
}

// indexGzip makes the zTOC of env's gzip layer with spans of spanSize
// uncompressed bytes, as soci-snapshotter's builder does, and pushes it.
func indexGzip(ctx context.Context, env *Env, spanSize int64) (*lazyBlob, error) {
	f, err := os.Open(env.GzipPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	z, err := soci.Index(ctx, bufio.NewReaderSize(f, 1<<20), soci.Gzip, soci.WithSpanSize(spanSize))
	if err != nil {
		return nil, fmt.Errorf("index gzip layer: %w", err)
	}
	zb, err := soci.Encode(z)
	if err != nil {
		return nil, err
	}
	d, err := env.Registry.Push(ctx, env.Repo, zb)
	if err != nil {
		return nil, err
	}
	b := &lazyBlob{blobInfo: env.Gzip, ztoc: blobInfo{d, int64(len(zb))}}
	return b, b.measure(ctx, env, f, zb)
}

// measure sets b.needed, opening ra, b's bytes, with ztoc, its zTOC if it
// has one.
func (b *lazyBlob) measure(ctx context.Context, env *Env, ra io.ReaderAt, ztoc []byte) error {
	layer, err := reader.Open(ctx, fetcher.FromReaderAt(ra, b.Size), b.openOptions(env, ztoc)...)
	if err != nil {
		return err
	}
	defer layer.Close()
	n, err := neededBytes(layer, env.Trace)
	b.needed = n + int64(len(ztoc))
	return err
}

// fetchIndex fetches what the blob's descriptor points to besides the
// blob: a gzip layer's zTOC. Blobs the writer built hold their index.
func (b *lazyBlob) fetchIndex(ctx context.Context, env *Env) ([]byte, error) {
	if b.built != nil {
		return nil, nil
	}
	req, err := http.NewRequestWithContext(ctx, "GET", env.BlobURL(b.ztoc.Digest), nil)
	if err != nil {
		return nil, err
	}
	resp, err := env.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch zTOC: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch zTOC: GET blob: %s", resp.Status)
	}
	// The reader checks the bytes against the digest (WithTOCDigest).
	zb, err := io.ReadAll(io.LimitReader(resp.Body, b.ztoc.Size+1))
	if err != nil {
		return nil, fmt.Errorf("fetch zTOC: %w", err)
	}
	return zb, nil
}

// openOptions are the reader options that open the blob: with ztoc, its
// zTOC, for a gzip layer.
func (b *lazyBlob) openOptions(env *Env, ztoc []byte) []reader.Option {
	switch {
	case b.built == nil:
		return []reader.Option{reader.WithZtoc(ztoc), reader.WithTOCDigest(b.ztoc.Digest), reader.WithLayerDigest(b.Digest)}
	case env.NoAnnotations:
		// Only the TOC digest: the reader finds the index from its
		// default tail.
		return []reader.Option{reader.WithTOCDigest(b.built.TOCDigest)}
	default:
		// The descriptor's annotations, as a client with the manifest
		// has them: they pin the TOC and locate index and footer, which
		// then come in the first request.
		return []reader.Option{reader.WithAnnotations(b.built.Annotations)}
	}
}

// lazyModes holds what the lazy modes share: the blobs, each made once.
type lazyModes struct {
	mu    sync.Mutex
	blobs map[string]*lazyBlob
}

// plainBlob returns the eStargz blob built without prioritised files: the
// trace's chunks lie scattered.
func (m *lazyModes) plainBlob(ctx context.Context, env *Env) (*lazyBlob, error) {
	return m.blob("estargz", func() (*lazyBlob, error) { return buildLazy(ctx, env) })
}

// zstdBlob returns the zstd:chunked blob of the layer.
func (m *lazyModes) zstdBlob(ctx context.Context, env *Env) (*lazyBlob, error) {
	return m.blob("zstd:chunked", func() (*lazyBlob, error) {
		return buildLazy(ctx, env, writer.WithFormat(toc.FormatZstdChunked))
	})
}

// ztocBlob returns a blobFunc of env's gzip layer with its zTOC of
// spanSize spans, compared with the eStargz blob of plainBlob.
func (m *lazyModes) ztocBlob(spanSize int64) blobFunc {
	return func(ctx context.Context, env *Env) (*lazyBlob, error) {
		estargz, err := m.plainBlob(ctx, env)
		if err != nil {
			return nil, err
		}
		return m.blob(fmt.Sprint("gzip+zTOC ", spanSize), func() (*lazyBlob, error) {
			b, err := indexGzip(ctx, env, spanSize)
			if err != nil {
				return nil, err
			}
			b.chunkNeeded = estargz.needed
			return b, nil
		})
	}
}

// blob returns the blob named key, making it first if needed.
func (m *lazyModes) blob(key string, build func() (*lazyBlob, error)) (*lazyBlob, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b := m.blobs[key]; b != nil {
		return b, nil
	}
	b, err := build()
	if err != nil {
		return nil, err
	}
	if m.blobs == nil {
		m.blobs = make(map[string]*lazyBlob)
	}
	m.blobs[key] = b
	return b, nil
}

// lazyRun is one cold start against a lazy layer: open, plan, prefetch in
// the background while the workload reads the trace's files.
type lazyRun struct {
	env  *Env
	blob *lazyBlob
	// plan returns what to prefetch once the layer is open; nil means no
	// prefetch.
	plan func(ctx context.Context, layer *reader.Layer) (*prefetch.Plan, error)
	// observer, if set, sees each chunk's first read.
	observer func(reader.Access)
	// preload, if positive, is where the blob's prioritised region ends,
	// a hint published with the layer: the run fetches [0, preload) from
	// its start, alongside the footer and index.
	preload int64
}

// run measures the cold start. Stages: open (the first request: footer and
// TOC), toc (verifying and decoding the TOC), plan, prefetch (until the
// prefetch finished, overlapping read), decompress (CPU time spent
// decompressing and verifying prefetched frames, summed over cores) and
// read (until every trace file was read and checked).
func (r lazyRun) run(ctx context.Context) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var firstRequest atomic.Int64
	f, err := fetcher.NewHTTP(r.env.BlobURL(r.blob.Digest),
		fetcher.WithPlainHTTP(),
		fetcher.WithSize(r.blob.Size), // from the layer descriptor
		fetcher.WithTransport(r.env.Client.Transport),
		fetcher.WithMaxConnections(fetchConnections),
		fetcher.WithCoalescing(fetchPolicy()),
		fetcher.WithObserver(func(info fetcher.RequestInfo) {
			firstRequest.CompareAndSwap(0, int64(info.Latency))
		}))
	if err != nil {
		return Result{}, err
	}

	clock := r.env.StartClock()
	ztoc, err := r.blob.fetchIndex(ctx, r.env)
	if err != nil {
		return Result{}, err
	}
	indexed := clock.Elapsed()
	var src fetcher.Fetcher = f
	if r.preload > 0 {
		p := prefetch.Preload(ctx, f, fetcher.Range{Offset: 0, Length: r.preload})
		defer p.Close()
		src = p
	}
	opts := append(r.blob.openOptions(r.env, ztoc), reader.WithCache(cache.NewMemory(cacheBytes)))
	if r.observer != nil {
		opts = append(opts, reader.WithAccessObserver(r.observer))
	}
	layer, err := reader.Open(ctx, src, opts...)
	if err != nil {
		return Result{}, err
	}
	defer layer.Close()
	opened := clock.Elapsed()
	// Open is the request for the index: a zTOC's, or the layer's first.
	open := indexed + time.Duration(firstRequest.Load())
	stages := []Stage{{"open", open}, {"toc", opened - open}}

	var exec *prefetch.Execution
	var progress prefetch.Progress
	var prefetched time.Duration // when the last frame was cached
	var note string
	if r.plan != nil {
		plan, err := r.plan(ctx, layer)
		if err != nil {
			return Result{}, err
		}
		note = coverage(plan, r.env.Trace)
		stages = append(stages, Stage{"plan", clock.Elapsed() - opened})
		exec, err = prefetch.Start(ctx, plan, []*reader.Layer{layer},
			prefetch.WithWorkers(r.env.PrefetchWorkers), prefetch.WithRequests(r.env.PrefetchRequests),
			prefetch.WithProgress(func(p prefetch.Progress) {
				progress = p
				if p.FramesDone == p.Frames {
					prefetched = clock.Elapsed()
				}
			}))
		if err != nil {
			return Result{}, err
		}
	}

	readStart := clock.Elapsed()
	if _, err := readTrace(layer, r.env.Trace); err != nil {
		return Result{}, err
	}
	res := clock.Result()
	if w := r.env.RequestLog; w != nil {
		for _, q := range r.env.Registry.Stats().Log {
			fmt.Fprintf(w, "  at %v for %v: %s bytes, range %.80s\n", q.Start.Sub(clock.start).Round(time.Millisecond),
				q.Duration.Round(time.Millisecond), formatBytes(q.Bytes), q.Range)
		}
	}
	if exec != nil {
		if err := exec.Wait(); err != nil {
			return Result{}, err
		}
		stages = append(stages, Stage{"prefetch", max(prefetched-readStart, 0)}, Stage{"decompress", progress.Busy})
	}
	res.Stages = append(stages, Stage{"read", res.Total - readStart})
	res.NeededBytes, res.ChunkNeededBytes = r.blob.needed, r.blob.chunkNeeded
	if z := r.blob.ztoc.Size; z > 0 {
		note = strings.TrimPrefix(note+fmt.Sprintf("; needs %s of spans and the %s zTOC, against %s of eStargz chunks",
			formatBytes(r.blob.needed-z), formatBytes(z), formatBytes(r.blob.chunkNeeded)), "; ")
	}
	res.Note = note
	return res, nil
}

// coverage says how much of the trace plan covers.
func coverage(plan *prefetch.Plan, trace []TraceFile) string {
	planned := make(map[string]bool)
	for _, p := range plan.Paths(-1) {
		planned[p] = true
	}
	covered := 0
	for _, tf := range trace {
		if planned[tf.Name] {
			covered++
		}
	}
	return fmt.Sprintf("plan of %d files covers %d of the trace's %d files", len(planned), covered, len(trace))
}

// neededBytes returns the compressed bytes of the frames that hold the
// trace's files in layer: what any lazy reader of this blob must fetch.
func neededBytes(layer *reader.Layer, trace []TraceFile) (int64, error) {
	frames := make(map[int64]int64)
	for _, tf := range trace {
		e, err := layer.ContentEntry(tf.Name)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", tf.Name, err)
		}
		for _, c := range e.Chunks {
			if !c.Zeros && c.Size > 0 {
				frames[c.FrameOffset] = c.FrameEnd - c.FrameOffset
			}
		}
	}
	var n int64
	for _, size := range frames {
		n += size
	}
	return n, nil
}

// blobFunc returns a mode's blob, making it first if needed.
type blobFunc func(ctx context.Context, env *Env) (*lazyBlob, error)

// onDemand is a mode that reads the trace's files of blob on demand: each
// file's first read costs a round trip, unless an earlier read fetched
// the frame (or span) that holds it.
func onDemand(blob blobFunc) func(context.Context, *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		b, err := blob(ctx, env)
		if err != nil {
			return Result{}, err
		}
		return lazyRun{env: env, blob: b}.run(ctx)
	}
}

// traced is a mode that prefetches the trace's files of blob, planned
// from the trace against the opened layer, while the workload reads them.
func traced(blob blobFunc) func(context.Context, *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		b, err := blob(ctx, env)
		if err != nil {
			return Result{}, err
		}
		return traceRun(env, b).run(ctx)
	}
}

// traceRun is a run of blob that prefetches the trace's files.
func traceRun(env *Env, blob *lazyBlob) lazyRun {
	accesses := make([]prefetch.Access, len(env.Trace))
	for i, tf := range env.Trace {
		accesses[i] = prefetch.Access{Path: tf.Name}
	}
	return lazyRun{env: env, blob: blob, plan: func(ctx context.Context, layer *reader.Layer) (*prefetch.Plan, error) {
		return prefetch.FromTrace(ctx, overlay.New(layer), accesses)
	}}
}

// imageConfig is the image config of the image-config mode: it names the
// trace's first file, run through PATH, as the image's program.
func imageConfig(env *Env) v1.ImageConfig {
	return v1.ImageConfig{
		Entrypoint: []string{env.Trace[0].Name},
		Env:        []string{"PATH=/bin:/usr/bin:/usr/local/bin"},
	}
}

// lazyImageConfig prefetches what a static analysis of an image config
// finds: the program, its loader and libraries, and runtime files.
// Files it does not cover are read on demand.
func (m *lazyModes) lazyImageConfig(ctx context.Context, env *Env) (Result, error) {
	blob, err := m.plainBlob(ctx, env)
	if err != nil {
		return Result{}, err
	}
	cfg := imageConfig(env)
	var problems error
	res, err := lazyRun{env: env, blob: blob, plan: func(ctx context.Context, layer *reader.Layer) (*prefetch.Plan, error) {
		plan, err := prefetch.FromImageConfig(ctx, overlay.New(layer), cfg)
		if ctx.Err() != nil {
			return nil, err
		}
		// What the analysis could not follow (a loader or library that
		// the tree, not being a whole root file system, lacks) is left
		// to be read on demand.
		problems = err
		return plan, nil
	}}.run(ctx)
	if problems != nil {
		n := len(strings.Split(problems.Error(), "\n"))
		res.Note += fmt.Sprintf("; %d names it could not follow in this tree (first: %s)",
			n, strings.SplitN(problems.Error(), "\n", 2)[0])
	}
	return res, err
}

// lazyRecorded closes the loop: a first lazy run records which files the
// workload reads, in order; the layer is rebuilt with those files first
// (behind an eStargz landmark); a second cold run prefetches the
// landmark's region. Only the second run is measured.
func (m *lazyModes) lazyRecorded(ctx context.Context, env *Env) (Result, error) {
	plain, err := m.plainBlob(ctx, env)
	if err != nil {
		return Result{}, err
	}
	var rec prefetch.Recorder
	if _, err := (lazyRun{env: env, blob: plain, observer: rec.Observe}).run(ctx); err != nil {
		return Result{}, fmt.Errorf("recording run: %w", err)
	}
	profile := rec.Plan(0)
	blob, err := buildLazy(ctx, env, writer.WithPrioritizedFiles(profile.Paths(0)))
	if err != nil {
		return Result{}, err
	}
	return lazyRun{env: env, blob: blob, preload: blob.built.TOC().PrefetchEnd, plan: func(ctx context.Context, layer *reader.Layer) (*prefetch.Plan, error) {
		return prefetch.FromLandmark(0, layer.TOC()), nil
	}}.run(ctx)
}
