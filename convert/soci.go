package convert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"

	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/toc/soci"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultSOCIMinLayerSize is the smallest layer WithSOCI indexes unless
// SOCIMinLayerSize says otherwise: 10 MiB, soci's own default. Smaller
// layers are fetched whole by a SOCI puller.
const DefaultSOCIMinLayerSize = 10 << 20

// ErrNothingToIndex reports a SOCI conversion (WithSOCI) of an image of
// which no layer could be indexed: every one under the minimum size
// (SOCIMinLayerSize) or zstd, which SOCI does not read. soci convert
// fails the same way.
var ErrNothingToIndex = errors.New("no layer to index")

// A SOCIOption configures WithSOCI.
type SOCIOption func(*sociConfig)

type sociConfig struct {
	spanSize     int64
	minLayerSize int64
	buildTool    string
}

// SOCISpanSize sets how many uncompressed bytes at least lie between
// two checkpoints of a zTOC; <= 0 selects soci.DefaultSpanSize (4 MiB).
func SOCISpanSize(n int64) SOCIOption { return func(c *sociConfig) { c.spanSize = n } }

// SOCIMinLayerSize sets the size of the smallest layer blob indexed;
// 0 indexes every layer, < 0 selects DefaultSOCIMinLayerSize.
func SOCIMinLayerSize(n int64) SOCIOption { return func(c *sociConfig) { c.minLayerSize = n } }

// SOCIBuildTool sets the build tool identifier written in every zTOC
// and SOCI index; "" selects soci.DefaultBuildToolIdentifier.
func SOCIBuildTool(id string) SOCIOption { return func(c *sociConfig) { c.buildTool = id } }

// WithSOCI makes Image index the layers instead of rewriting them: see
// "SOCI" in the package documentation. WithFormat, WithCompressionLevel
// and WithChunkSize do not apply.
func WithSOCI(opts ...SOCIOption) Option {
	return func(c *config) {
		s := &sociConfig{minLayerSize: DefaultSOCIMinLayerSize}
		for _, o := range opts {
			o(s)
		}
		if s.spanSize <= 0 {
			s.spanSize = soci.DefaultSpanSize
		}
		if s.minLayerSize < 0 {
			s.minLayerSize = DefaultSOCIMinLayerSize
		}
		if s.buildTool == "" {
			s.buildTool = soci.DefaultBuildToolIdentifier
		}
		c.soci = s
	}
}

// isSOCIIndex reports whether an image index entry is a SOCI index,
// which a conversion leaves out: it indexes the source's manifest, not
// the converted one (WithSOCI adds new ones).
func isSOCIIndex(d ocispec.Descriptor) bool {
	return d.ArtifactType == soci.MediaTypeIndexV2 || d.ArtifactType == soci.MediaTypeIndexV1
}

// withoutSOCIBinding returns annotations less the binding of a SOCI
// index to the source manifest, which the converted one does not keep.
func withoutSOCIBinding(a map[string]string) map[string]string {
	if _, ok := a[soci.AnnotationIndexDigest]; !ok {
		return a
	}
	a = maps.Clone(a)
	delete(a, soci.AnnotationIndexDigest)
	return a
}

// sociLayer is what indexing one layer made.
type sociLayer struct {
	ref    *soci.ZtocRef
	files  map[string]*soci.File // by cleaned name
	starts []int64               // where each span starts
	note   string                // why the layer was not indexed
}

// indexable reports whether WithSOCI indexes the layer, and why not.
func (j *layerJob) indexable() (bool, string) {
	switch {
	case j.comp == ocidoc.Zstd:
		return false, "not indexed: zstd, which SOCI does not read"
	case j.desc.Size < j.c.cfg.soci.minLayerSize:
		return false, fmt.Sprintf("not indexed: %d bytes, under the %d-byte minimum", j.desc.Size, j.c.cfg.soci.minLayerSize)
	}
	return true, ""
}

// sociCost is what a layer holds while WithSOCI reads it: the fetch
// buffers, a decompressor for planning, and the indexer's window per
// checkpoint, at a guessed 4:1 compression.
func (c *converter) sociCost(j *layerJob) int64 {
	return c.stageCost(j) + 2*ioBuffer + (4*j.desc.Size/c.cfg.soci.spanSize+1)*soci.WindowSize
}

// errAborted ends the consumers of a layer's bytes when reading fails.
var errAborted = errors.New("aborted")

// sociIndex reads the layer from the source once, and from that one
// read at once: makes its zTOC and pushes it (if the layer is indexed),
// copies the blob to the target (if it lacks it), and spools its tar for
// planning (if fb is not nil). A layer that needs none of these is not
// read.
func (j *layerJob) sociIndex(ctx context.Context, fb *fileBudget) error {
	c := j.c
	indexed, note := j.indexable()
	j.soci.note = note
	has, err := c.dst.Has(ctx, j.desc)
	if err != nil {
		return err
	}
	if !indexed && has && fb == nil {
		j.report(true, true)
		return nil
	}
	br, err := j.openBlob(ctx)
	if err != nil {
		return err
	}
	defer br.Close()

	// Each consumer reads the blob through a pipe, in step with the
	// read: nothing is buffered beyond the pipes' callers.
	var (
		mu          sync.Mutex
		consumerErr error
		wg          sync.WaitGroup
		pipes       []*io.PipeWriter
		writers     []io.Writer
	)
	consume := func(fn func(io.Reader) error) {
		pr, pw := io.Pipe()
		pipes, writers = append(pipes, pw), append(writers, pw)
		wg.Go(func() {
			err := fn(pr)
			if err == nil {
				_, err = io.Copy(io.Discard, pr) // what follows the tar
			}
			if err != nil && !errors.Is(err, errAborted) {
				mu.Lock()
				consumerErr = cmpErr(consumerErr, err)
				mu.Unlock()
			}
			pr.CloseWithError(cmpErr(err, errAborted))
		})
	}
	if !has {
		consume(func(r io.Reader) error { return c.dst.PushBlob(ctx, j.desc, r) })
	}
	if fb != nil {
		consume(func(r io.Reader) error {
			in, h, release, err := j.tarStream(r)
			if err != nil {
				return err
			}
			defer release()
			return j.spoolTar(in, h, fb)
		})
	}
	var in io.Reader = br
	if len(writers) > 0 {
		in = io.TeeReader(br, io.MultiWriter(writers...))
	}
	var z *soci.Ztoc
	if indexed {
		comp := soci.Gzip
		if j.comp == ocidoc.Uncompressed {
			comp = soci.Uncompressed
		}
		z, err = soci.Index(ctx, in, comp, c.cfg.sociOptions()...)
	}
	if err == nil {
		// The rest, to the end: the blob's digest is checked there.
		_, err = io.Copy(io.Discard, in)
	}
	for _, pw := range pipes {
		if err != nil {
			pw.CloseWithError(errAborted)
		} else {
			pw.Close()
		}
	}
	wg.Wait()
	if consumerErr != nil {
		return consumerErr
	}
	if err != nil {
		return err
	}
	if z != nil {
		if err := j.pushZtoc(ctx, z); err != nil {
			return err
		}
	}
	j.report(true, !indexed)
	return nil
}

// cmpErr returns err, or else def.
func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// pushZtoc encodes and pushes the layer's zTOC, and keeps what mapping
// a plan to its spans needs.
func (j *layerJob) pushZtoc(ctx context.Context, z *soci.Ztoc) error {
	blob, err := soci.Encode(z)
	if err != nil {
		return err
	}
	starts, err := z.SpanStarts()
	if err != nil {
		return err
	}
	ref := soci.NewZtocRef(blob, j.desc, j.c.cfg.soci.spanSize)
	if err := j.c.push(ctx, ref.Descriptor, bytes.NewReader(blob)); err != nil {
		return fmt.Errorf("zTOC %s: %w", ref.Descriptor.Digest, err)
	}
	j.progress.Lock()
	j.written += int64(len(blob))
	j.progress.Unlock()
	j.soci.ref, j.soci.starts = &ref, starts
	j.soci.files = make(map[string]*soci.File, len(z.Files))
	for i := range z.Files {
		j.soci.files[cleanName(z.Files[i].Name)] = &z.Files[i]
	}
	return nil
}

// prefetchSpans returns the spans of the layer that hold the files of
// its plan items, as soci's index builder maps its prefetch files.
func (j *layerJob) prefetchSpans() []soci.PrefetchSpan {
	var ranges []soci.ByteRange
	for _, it := range j.items {
		f := j.soci.files[it.Path]
		if f != nil && f.Type == "hardlink" {
			f = j.soci.files[cleanName(f.Linkname)]
		}
		if f == nil || f.Type != "reg" || f.Size == 0 || it.Offset >= f.Size {
			continue
		}
		r := soci.ByteRange{Offset: f.Offset + it.Offset, Length: f.Size - it.Offset}
		if it.Length > 0 {
			r.Length = min(r.Length, it.Length)
		}
		ranges = append(ranges, r)
	}
	return soci.PrefetchSpans(j.soci.starts, ranges)
}

func (c *config) sociOptions() []soci.Option {
	return []soci.Option{
		soci.WithSpanSize(c.soci.spanSize),
		soci.WithBuildToolIdentifier(c.soci.buildTool),
		soci.WithMaxLayerSize(c.maxLayerSize),
	}
}

// sociManifest indexes the layers of the manifest m, pushes their zTOCs,
// prefetch artifacts and SOCI index, and writes m anew as an OCI
// manifest bound to its index (soci.AnnotationIndexDigest), its layers
// and config as they were. A manifest with no layer to index is written
// anew without a binding. At the root, the new manifest and its SOCI
// index go in a new image index, whose descriptor is returned.
func (c *converter) sociManifest(ctx context.Context, d ocispec.Descriptor, m *ocispec.Manifest, ic *imageConfig, cb []byte, root bool) (ocispec.Descriptor, error) {
	if err := c.push(ctx, m.Config, bytes.NewReader(cb)); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	jobs, patterns, err := c.sociLayers(ctx, d.Digest, m.Layers, ic)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	index := soci.IndexManifest{Version: soci.IndexV2, Annotations: map[string]string{soci.AnnotationBuildToolIdentifier: c.cfg.soci.buildTool}}
	for _, j := range jobs {
		if j.soci.ref != nil {
			index.Ztocs = append(index.Ztocs, *j.soci.ref)
		}
	}
	for _, j := range jobs {
		if j.soci.ref == nil {
			continue
		}
		spans := j.prefetchSpans()
		if len(spans) == 0 {
			continue
		}
		blob, err := soci.EncodePrefetch(spans)
		if err != nil {
			return ocispec.Descriptor{}, j.fail(err)
		}
		ref := soci.NewPrefetchRef(blob, j.desc.Digest)
		if err := c.push(ctx, ref.Descriptor, bytes.NewReader(blob)); err != nil {
			return ocispec.Descriptor{}, j.fail(fmt.Errorf("prefetch artifact %s: %w", ref.Descriptor.Digest, err))
		}
		index.Prefetches = append(index.Prefetches, ref)
	}

	m.SchemaVersion, m.MediaType = 2, ocispec.MediaTypeImageManifest
	// soci writes OCI manifests only, whose config must be OCI's too;
	// the config's bytes stay as they are.
	m.Config.MediaType = ocispec.MediaTypeImageConfig
	m.Annotations = withoutSOCIBinding(m.Annotations)
	if patterns != "" || len(index.Ztocs) > 0 {
		m.Annotations = maps.Clone(m.Annotations)
		if m.Annotations == nil {
			m.Annotations = make(map[string]string)
		}
	}
	if patterns != "" {
		m.Annotations[prefetchAnnotation] = patterns
	}
	var sociDesc ocispec.Descriptor
	if len(index.Ztocs) > 0 {
		b, err := index.Encode()
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		empty := soci.EmptyConfig()
		cd := ocispec.Descriptor{MediaType: soci.MediaTypeIndexV2, Digest: digest.FromBytes(empty), Size: int64(len(empty))}
		if err := c.push(ctx, cd, bytes.NewReader(empty)); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("SOCI index config: %w", err)
		}
		sociDesc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(b), Size: int64(len(b))}
		if err := c.pushBytes(ctx, sociDesc, b); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("SOCI index: %w", err)
		}
		m.Annotations[soci.AnnotationIndexDigest] = sociDesc.Digest.String()
		c.sociIndexes++
	}
	out, err := c.pushManifest(ctx, m.MediaType, m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if sociDesc.Digest != "" {
		c.sociIndexFor[out.Digest] = sociDesc
	}
	if !root {
		return out, nil
	}
	// A single manifest becomes an index of it and its SOCI index, as
	// soci convert makes it, the platform taken from the config.
	p := ic.image.Platform
	out.Platform = &p
	entries := c.sociEntries(out, m.Annotations)
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: entries}
	return c.pushManifest(ctx, idx.MediaType, idx)
}

// sociEntries returns the entries of an image index for the converted
// manifest out, listed with annotations: out, annotated with its SOCI
// index's digest, then (if it has one) its SOCI index, as soci convert
// lists them.
func (c *converter) sociEntries(out ocispec.Descriptor, annotations map[string]string) []ocispec.Descriptor {
	sd, ok := c.sociIndexFor[out.Digest]
	out.Annotations = withoutSOCIBinding(annotations)
	if !ok {
		return []ocispec.Descriptor{out}
	}
	out.Annotations = maps.Clone(out.Annotations)
	if out.Annotations == nil {
		out.Annotations = make(map[string]string, 1)
	}
	out.Annotations[soci.AnnotationIndexDigest] = sd.Digest.String()
	sd.Platform = out.Platform
	sd.ArtifactType = soci.MediaTypeIndexV2
	sd.Annotations = map[string]string{soci.AnnotationImageManifestDigest: out.Digest.String()}
	return []ocispec.Descriptor{out, sd}
}

// pushBytes writes a manifest of known bytes unless the target has it.
func (c *converter) pushBytes(ctx context.Context, d ocispec.Descriptor, b []byte) error {
	if has, err := c.dst.Has(ctx, d); err != nil || has {
		return err
	}
	return c.dst.PushManifest(ctx, d, b)
}

// sociLayers indexes the layers of one manifest, and returns their jobs
// with the patterns annotation of the plan ("" without one).
func (c *converter) sociLayers(ctx context.Context, manifest digest.Digest, descs []ocispec.Descriptor, ic *imageConfig) ([]*layerJob, string, error) {
	jobs, err := c.newJobs(manifest, descs, ic)
	if err != nil {
		return nil, "", err
	}
	defer func() {
		for _, j := range jobs {
			j.closeSpool()
		}
	}()
	var fb *fileBudget
	if c.cfg.prefetch != prefetchNone {
		fb = &fileBudget{files: c.cfg.maxFiles, nameBytes: c.cfg.maxNameBytes}
	}
	err = c.each(ctx, jobs, c.sociCost, func(ctx context.Context, j *layerJob) error {
		return j.sociIndex(ctx, fb)
	})
	if err != nil || fb == nil {
		return jobs, "", err
	}
	patterns, err := c.plan(ctx, ic, jobs)
	return jobs, patterns, err
}

// planItems returns the items of plan for layer i.
func planItems(plan *prefetch.Plan, i int) []prefetch.Item {
	var out []prefetch.Item
	for _, it := range plan.Items() {
		if it.Layer == i {
			out = append(out, it)
		}
	}
	return out
}
