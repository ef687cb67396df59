package convert

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"runtime"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/overlay"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

const prefetchAnnotation = prefetch.AnnotationPatterns

const (
	// zstdMaxWindow caps the window an untrusted zstd layer may demand
	// of its decoder, as package writer caps it: zstd's own levels use
	// at most 8 MiB, --long mode 128 MiB.
	zstdMaxWindow = 128 << 20
	// ioBuffer is the size of the buffers around files and streams.
	ioBuffer = 1 << 20
)

var (
	gzipMagic = []byte{0x1f, 0x8b, 0x08}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// convertedLayer is a layer as the new manifest has it.
type convertedLayer struct {
	desc   ocispec.Descriptor
	diffID digest.Digest
}

// layerJob is one layer of a manifest being converted.
type layerJob struct {
	c        *converter
	manifest digest.Digest
	index    int
	desc     ocispec.Descriptor
	comp     ocidoc.Compression
	diffID   digest.Digest // the config's

	spool *os.File // the uncompressed tar, when planning needs it
	fs    *tarFS
	prio  []string
	items []prefetch.Item // the plan's items of this layer
	out   convertedLayer
	soci  sociLayer // WithSOCI

	progress sync.Mutex
	read     int64
	written  int64
	reported int64
}

func (j *layerJob) fail(err error) error {
	return &LayerError{Manifest: j.manifest, Index: j.index, Digest: j.desc.Digest, Err: err}
}

// layers converts the layers of one manifest and returns them, with the
// patterns annotation of the plan that ordered them ("" without one).
func (c *converter) layers(ctx context.Context, manifest digest.Digest, descs []ocispec.Descriptor, ic *imageConfig) ([]convertedLayer, string, error) {
	jobs, err := c.newJobs(manifest, descs, ic)
	if err != nil {
		return nil, "", err
	}
	defer func() {
		for _, j := range jobs {
			j.closeSpool()
		}
	}()

	var patterns string
	if c.cfg.prefetch != prefetchNone {
		fb := &fileBudget{files: c.cfg.maxFiles, nameBytes: c.cfg.maxNameBytes}
		err := c.each(ctx, jobs, c.stageCost, func(ctx context.Context, j *layerJob) error {
			return j.stage(ctx, fb)
		})
		if err != nil {
			return nil, "", err
		}
		if patterns, err = c.plan(ctx, ic, jobs); err != nil {
			return nil, "", err
		}
	}
	err = c.each(ctx, jobs, c.buildCost, func(ctx context.Context, j *layerJob) error {
		return j.convert(ctx)
	})
	if err != nil {
		return nil, "", err
	}
	out := make([]convertedLayer, len(jobs))
	for i, j := range jobs {
		out[i] = j.out
	}
	return out, patterns, nil
}

// newJobs returns the jobs of a manifest's layers, after checking what
// their descriptors say.
func (c *converter) newJobs(manifest digest.Digest, descs []ocispec.Descriptor, ic *imageConfig) ([]*layerJob, error) {
	jobs := make([]*layerJob, len(descs))
	for i, d := range descs {
		j := &layerJob{c: c, manifest: manifest, index: i, desc: d, diffID: ic.image.RootFS.DiffIDs[i]}
		jobs[i] = j
		comp, ok := ocidoc.LayerCompression(d.MediaType)
		if !ok {
			return nil, j.fail(fmt.Errorf("media type %q: %w", untrusted.Short(d.MediaType), ErrUnsupported))
		}
		if err := ocidoc.CheckDescriptor(d, c.cfg.maxLayerSize); err != nil {
			return nil, j.fail(err)
		}
		j.comp = comp
	}
	return jobs, nil
}

// each runs fn on every job, at most WithParallelism at once and within
// the memory budget, each holding cost(job) of it, and stops at the first
// error.
func (c *converter) each(ctx context.Context, jobs []*layerJob, cost func(*layerJob) int64, fn func(context.Context, *layerJob) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.parallelism)
	for _, j := range jobs {
		n := min(cost(j), c.cfg.liveBudget())
		if err := c.budget.Acquire(gctx, n); err != nil {
			break // g.Wait reports why
		}
		g.Go(func() error {
			defer c.budget.Release(n)
			if err := fn(gctx, j); err != nil {
				return j.fail(err)
			}
			return nil
		})
	}
	err := g.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// Memory a layer holds, by what it does, for the budget: fetch and
// decompression buffers while it is read, the writer's while it is
// built.
func (c *converter) stageCost(j *layerJob) int64 {
	n := int64(3*streamRange + 2*ioBuffer)
	if j.comp == ocidoc.Zstd {
		n += zstdMaxWindow
	}
	return n
}

func (c *converter) buildCost(j *layerJob) int64 {
	n := int64(2*ioBuffer) + c.cfg.writerCost(c.cfg.writerConcurrency())
	if j.spool == nil {
		n += c.stageCost(j) // streamed from the source
	}
	return n
}

// liveBudget is what the buffers of layers in flight may hold together:
// half the budget, as the Go heap, collected at GOGC=100, grows to about
// twice what is live.
func (c *config) liveBudget() int64 { return c.budget / 2 }

// writerCost is what writer.Build holds with concurrency workers:
// measured on the Go toolchain, a JDK and Python, about six chunks per
// worker in members in flight and spare buffers, its encoder, and two
// chunks for the chunker.
func (c *config) writerCost(concurrency int) int64 {
	return 2*c.chunkSize + int64(concurrency)*c.workerCost()
}

func (c *config) workerCost() int64 {
	enc := int64(1 << 20) // gzip
	if c.format == toc.FormatZstdChunked {
		enc = 20 << 20 // its history and tables, measured at level 3
		if c.level >= 10 {
			enc = 64 << 20
		}
	}
	return 6*c.chunkSize + enc
}

// writerConcurrency is the compression workers of one layer: every core,
// as far as the budget lets one layer, read from the source, have them.
func (c *config) writerConcurrency() int {
	fit := (c.liveBudget() - 3*streamRange - 2*ioBuffer - 2*c.chunkSize) / c.workerCost()
	return int(max(1, min(int64(runtime.GOMAXPROCS(0)), fit)))
}

// open returns the layer's tar stream from the source, which must be
// read to its end for the blob's digest to be checked (and the returned
// hash to be the DiffID), and a func that releases it.
func (j *layerJob) open(ctx context.Context) (io.Reader, hash.Hash, func(), error) {
	br, err := j.openBlob(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	in, h, release, err := j.tarStream(br)
	if err != nil {
		br.Close()
		return nil, nil, nil, err
	}
	return in, h, func() { release(); br.Close() }, nil
}

// openBlob starts reading the layer blob from the source; its digest is
// checked as it is read.
func (j *layerJob) openBlob(ctx context.Context) (*blobReader, error) {
	f, err := j.c.src.Blob(ctx, j.desc)
	if err != nil {
		return nil, err
	}
	return newBlobReader(ctx, f, j.desc, j.onRead)
}

// tarStream returns the tar stream inside the layer blob r, which must
// be read to its end for the returned hash to be the DiffID, and a func
// that releases its decompressor.
func (j *layerJob) tarStream(r io.Reader) (io.Reader, hash.Hash, func(), error) {
	release := func() {}
	in := bufio.NewReaderSize(r, ioBuffer)
	magic, err := in.Peek(len(zstdMagic))
	if err != nil && err != io.EOF {
		return nil, nil, nil, err
	}
	var tarStream io.Reader = in
	switch j.comp {
	case ocidoc.Gzip:
		if !bytes.HasPrefix(magic, gzipMagic) {
			return nil, nil, nil, fmt.Errorf("media type %s, but the blob is not gzip: %w", j.desc.MediaType, ErrMismatch)
		}
		zr, err := gzip.NewReader(in)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("gzip: %w", err)
		}
		tarStream = zr
	case ocidoc.Zstd:
		if !bytes.HasPrefix(magic, zstdMagic) {
			return nil, nil, nil, fmt.Errorf("media type %s, but the blob is not zstd: %w", j.desc.MediaType, ErrMismatch)
		}
		zr, err := zstd.NewReader(in, zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("zstd: %w", err)
		}
		tarStream = zr.IOReadCloser()
		release = zr.Close
	default:
		if bytes.HasPrefix(magic, gzipMagic) || bytes.HasPrefix(magic, zstdMagic) {
			return nil, nil, nil, fmt.Errorf("media type %s, but the blob is compressed: %w", j.desc.MediaType, ErrMismatch)
		}
	}
	// A tar inside must be a tar, not compressed again: the writer would
	// decompress it, and the layer would change.
	tb := bufio.NewReaderSize(tarStream, 64<<10)
	if inner, err := tb.Peek(len(zstdMagic)); err == nil && (bytes.HasPrefix(inner, gzipMagic) || bytes.HasPrefix(inner, zstdMagic)) {
		release()
		return nil, nil, nil, fmt.Errorf("the layer's tar is compressed twice: %w", ErrUnsupported)
	}
	h := sha256.New()
	limited := &limitReader{r: io.TeeReader(tb, h), max: j.c.cfg.maxLayerSize}
	return limited, h, release, nil
}

// finish reads what is left of the tar stream and checks the DiffID the
// layer's bytes have against the config's.
func (j *layerJob) finish(in io.Reader, h hash.Hash) error {
	if _, err := io.Copy(io.Discard, in); err != nil {
		return err
	}
	if got := digest.NewDigest(digest.SHA256, h); got != j.diffID {
		return fmt.Errorf("uncompressed digest %s, config's DiffID %s: %w", got, j.diffID, ErrMismatch)
	}
	return nil
}

// limitReader fails once more than max bytes were read.
type limitReader struct {
	r      io.Reader
	n, max int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if l.n += int64(n); l.n > l.max {
		return n, fmt.Errorf("uncompressed layer over %d bytes: %w", l.max, ErrTooLarge)
	}
	return n, err
}

// stage spools the layer's tar to a temporary file and indexes it, for
// planning and then for building.
func (j *layerJob) stage(ctx context.Context, fb *fileBudget) error {
	in, h, release, err := j.open(ctx)
	if err != nil {
		return err
	}
	defer release()
	return j.spoolTar(in, h, fb)
}

// spoolTar copies the tar stream in, of hash h, to a temporary file and
// indexes it.
func (j *layerJob) spoolTar(in io.Reader, h hash.Hash, fb *fileBudget) error {
	f, err := os.CreateTemp(j.c.cfg.tempDir, "lazylayer-convert-*.tar")
	if err != nil {
		return err
	}
	j.spool = f
	w := bufio.NewWriterSize(f, ioBuffer)
	if j.fs, err = indexTar(in, w, f, fb); err != nil {
		return err
	}
	if err := j.finish(in, h); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

func (j *layerJob) closeSpool() {
	if j.spool != nil {
		j.spool.Close()
		os.Remove(j.spool.Name())
		j.spool = nil
	}
}

// plan decides every layer's prioritised files and returns the patterns
// of the plan.
func (c *converter) plan(ctx context.Context, ic *imageConfig, jobs []*layerJob) (string, error) {
	layers := make([]fs.FS, len(jobs))
	for i, j := range jobs {
		layers[i] = j.fs
	}
	ov := overlay.New(layers...)
	var plan *prefetch.Plan
	var err error
	switch c.cfg.prefetch {
	case prefetchTrace:
		plan, err = prefetch.FromTrace(ctx, ov, c.cfg.trace, c.cfg.plannerOpts...)
	case prefetchPatterns:
		plan, err = prefetch.FromPatterns(ctx, ov, c.cfg.patterns, c.cfg.plannerOpts...)
	default:
		plan, err = prefetch.FromImageConfig(ctx, ov, ic.image.Config, c.cfg.plannerOpts...)
	}
	// Planners report what they could not follow and plan the rest; a
	// plan is a hint, so only the context stops the conversion.
	if ctxErr := ctx.Err(); ctxErr != nil {
		return "", ctxErr
	}
	_ = err
	for i, j := range jobs {
		j.prio = plan.Paths(i)
		if c.cfg.soci != nil {
			j.items = planItems(plan, i)
		}
		j.fs = nil
	}
	if plan.Len() == 0 {
		return "", nil
	}
	return plan.Patterns(-1, 0).String(), nil
}

// convert writes the layer to the target: rebuilt, or as it is if it
// already is what it would be rebuilt into.
func (j *layerJob) convert(ctx context.Context) error {
	c := j.c
	opts := c.cfg.optionsAnnotation(j.prio)
	if j.desc.MediaType == c.cfg.mediaType() && j.desc.Annotations[AnnotationOptions] == opts {
		return j.reuse(ctx)
	}
	var in io.Reader
	var h hash.Hash
	if j.spool != nil {
		in = j.spool // read in place by writer.Build
	} else {
		var release func()
		var err error
		if in, h, release, err = j.open(ctx); err != nil {
			return err
		}
		defer release()
	}
	f, err := os.CreateTemp(c.cfg.tempDir, "lazylayer-convert-*.blob")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	w := bufio.NewWriterSize(&progressWriter{j: j, w: f}, ioBuffer)
	res, err := writer.Build(ctx, w, in, c.cfg.writerOptions(j.prio, c.cfg.writerConcurrency())...)
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if h != nil {
		if err := j.finish(in, h); err != nil {
			return err
		}
	}
	j.closeSpool()
	annotations := keptAnnotations(j.desc.Annotations)
	maps.Copy(annotations, res.Annotations)
	annotations[AnnotationOptions] = opts
	d := ocispec.Descriptor{MediaType: res.MediaType, Digest: res.Digest, Size: res.Size, Annotations: annotations}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := c.push(ctx, d, bufio.NewReaderSize(f, ioBuffer)); err != nil {
		return err
	}
	j.out = convertedLayer{desc: d, diffID: res.DiffID}
	j.report(true, false)
	return nil
}

// reuse writes the layer to the target as it is.
func (j *layerJob) reuse(ctx context.Context) error {
	j.out = convertedLayer{desc: j.desc, diffID: j.diffID}
	defer j.report(true, true)
	if has, err := j.c.dst.Has(ctx, j.desc); err != nil || has {
		return err
	}
	f, err := j.c.src.Blob(ctx, j.desc)
	if err != nil {
		return err
	}
	br, err := newBlobReader(ctx, f, j.desc, j.onRead)
	if err != nil {
		return err
	}
	defer br.Close()
	return j.c.dst.PushBlob(ctx, j.desc, br)
}

// push writes a blob to the target unless it has it.
func (c *converter) push(ctx context.Context, d ocispec.Descriptor, r io.Reader) error {
	if has, err := c.dst.Has(ctx, d); err != nil || has {
		return err
	}
	return c.dst.PushBlob(ctx, d, r)
}

// formatAnnotations are the annotations of a layer's format, which a
// rebuilt layer gets anew.
var formatAnnotations = []string{
	AnnotationOptions,
	toc.AnnotationIndexPosition,
	toc.AnnotationEStargzTOCDigest,
	toc.AnnotationUncompressedSize,
	toc.AnnotationZstdChunkedManifestChecksum,
	toc.AnnotationZstdChunkedManifestPosition,
	toc.AnnotationZstdChunkedTarSplitPosition,
	toc.AnnotationZstdChunkedTarSplitChecksum,
	toc.LegacyAnnotationZstdChunkedManifestChecksum,
	toc.LegacyAnnotationZstdChunkedManifestPosition,
}

func keptAnnotations(a map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = make(map[string]string)
	}
	for _, k := range formatAnnotations {
		delete(out, k)
	}
	return out
}

// Progress reports are made every progressStep bytes read or written.
const progressStep = 4 << 20

func (j *layerJob) onRead(n int64) {
	j.progress.Lock()
	j.read = n
	j.progress.Unlock()
	j.report(false, false)
}

type progressWriter struct {
	j *layerJob
	w io.Writer
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.j.progress.Lock()
	p.j.written += int64(n)
	p.j.progress.Unlock()
	p.j.report(false, false)
	return n, err
}

func (j *layerJob) report(done, reused bool) {
	fn := j.c.cfg.progress
	if fn == nil {
		return
	}
	j.progress.Lock()
	defer j.progress.Unlock()
	if !done && j.read+j.written-j.reported < progressStep {
		return
	}
	j.reported = j.read + j.written
	fn(Progress{Manifest: j.manifest, Index: j.index, Layer: j.desc, Read: j.read, Written: j.written, Done: done, Reused: reused, Note: j.soci.note})
}
