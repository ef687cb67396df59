package convert

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"
)

// AnnotationOptions is the layer descriptor annotation under which Image
// records the options a layer was converted with, so that converting
// the image again with the same options keeps the layer as it is.
const AnnotationOptions = "io.github.lazylayer.convert.options"

// attestationType marks, in an index written by BuildKit, the manifests
// that attest another manifest of the index rather than run anywhere.
const (
	annotationReferenceType = "vnd.docker.reference.type"
	attestationType         = "attestation-manifest"
)

// errNothingLeft is what converting an index whose manifests were all
// left out by WithPlatforms returns.
var errNothingLeft = errors.New("no manifest left")

// Image converts the image src resolves to, and writes it to dst: every
// layer to the format of WithFormat, with the files a prefetch plan
// names first, and the configs, manifests and indexes above them anew.
// Children are written before what refers to them, and the root is
// tagged in dst (Target.Tag) only once everything is written. Image
// returns the descriptor of the new root.
//
// See the package documentation for what is converted, how, and the
// bounds on what src may make it do.
func Image(ctx context.Context, src image.Source, dst image.Target, opts ...Option) (ocispec.Descriptor, error) {
	cfg := newConfig(opts)
	if err := cfg.validate(ctx); err != nil {
		return ocispec.Descriptor{}, err
	}
	root, err := src.Resolve(ctx)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("convert: resolving the source: %w", err)
	}
	c := &converter{
		cfg:     cfg,
		src:     src,
		dst:     dst,
		budget:  semaphore.NewWeighted(cfg.liveBudget()),
		done:    make(map[digest.Digest]ocispec.Descriptor),
		matched: make([]bool, len(cfg.platforms)),

		sociIndexFor: make(map[digest.Digest]ocispec.Descriptor),
	}
	out, err := c.node(ctx, root, 0, nil)
	if errors.Is(err, errNothingLeft) {
		err = nil // reported below, by platform
	}
	if err == nil {
		for i, ok := range c.matched {
			if !ok {
				err = fmt.Errorf("%s: %w", platformString(cfg.platforms[i]), ErrNoPlatform)
				break
			}
		}
	}
	if err == nil && cfg.soci != nil && c.sociIndexes == 0 {
		err = fmt.Errorf("%w: every layer is zstd or under %d bytes", ErrNothingToIndex, cfg.soci.minLayerSize)
	}
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("convert: %w", err)
	}
	if err := dst.Tag(ctx, out); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("convert: tagging %s: %w", out.Digest, err)
	}
	return out, nil
}

// validate checks the options before anything is read: the writer's by
// building an empty layer with them.
func (c *config) validate(ctx context.Context) error {
	if c.soci != nil {
		return nil // no layer is written
	}
	if c.format != toc.FormatEStargz && c.format != toc.FormatZstdChunked {
		return fmt.Errorf("convert: format %v: %w", c.format, writer.ErrInvalidOption)
	}
	var empty bytes.Buffer
	tar.NewWriter(&empty).Close()
	if _, err := writer.Build(ctx, discard{}, &empty, c.writerOptions(nil, 1)...); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	return nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// writerOptions returns the options of writer.Build for a layer whose
// prioritised files are prio.
func (c *config) writerOptions(prio []string, concurrency int) []writer.Option {
	opts := []writer.Option{
		writer.WithFormat(c.format),
		writer.WithCompressionLevel(c.level),
		writer.WithChunkSize(c.chunkSize),
		writer.WithConcurrency(concurrency),
		writer.WithTempDir(c.tempDir),
	}
	if len(prio) > 0 && c.format == toc.FormatEStargz {
		opts = append(opts, writer.WithPrioritizedFiles(prio), writer.WithAllowMissingPrioritized())
	}
	return opts
}

// optionsAnnotation is the AnnotationOptions value of a layer converted
// with prioritised files prio: everything of the options that changes
// the blob.
func (c *config) optionsAnnotation(prio []string) string {
	p := "none"
	if len(prio) > 0 && c.format == toc.FormatEStargz {
		p = digest.FromString(fmt.Sprintf("%q", prio)).String()
	}
	return fmt.Sprintf("format=%s;level=%d;chunk=%d;prioritized=%s", c.format, c.level, c.chunkSize, p)
}

// mediaType is the media type of the layers Image writes.
func (c *config) mediaType() string {
	if c.format == toc.FormatZstdChunked {
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayerGzip
}

type converter struct {
	cfg    *config
	src    image.Source
	dst    image.Target
	budget *semaphore.Weighted

	visited int
	done    map[digest.Digest]ocispec.Descriptor // converted manifests and indexes, by source digest
	matched []bool                               // cfg.platforms found

	sociIndexFor map[digest.Digest]ocispec.Descriptor // WithSOCI: SOCI indexes, by converted manifest digest
	sociIndexes  int
}

// node converts the manifest or index d, below depth indexes whose
// digests are in ancestors.
func (c *converter) node(ctx context.Context, d ocispec.Descriptor, depth int, ancestors []digest.Digest) (ocispec.Descriptor, error) {
	if slices.Contains(ancestors, d.Digest) {
		return ocispec.Descriptor{}, fmt.Errorf("%s: %w", d.Digest, ErrCycle)
	}
	if out, ok := c.done[d.Digest]; ok {
		return out, nil
	}
	if c.visited++; c.visited > c.cfg.maxManifests {
		return ocispec.Descriptor{}, fmt.Errorf("more than %d manifests: %w", c.cfg.maxManifests, ErrLimit)
	}
	what := "manifest"
	if k, _ := ocidoc.KindOf(d.MediaType); k == ocidoc.KindIndex {
		what = "index"
	}
	b, err := fetchManifest(ctx, c.src, d, c.cfg.maxManifestSize)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%s %s: %w", what, untrusted.Short(string(d.Digest)), err)
	}
	k, _, err := ocidoc.ParseHeader(b, d.MediaType)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%s %s: %w", what, d.Digest, err)
	}
	var out ocispec.Descriptor
	if k == ocidoc.KindIndex {
		if depth >= c.cfg.maxDepth {
			return ocispec.Descriptor{}, fmt.Errorf("index %s: nested %d deep: %w", d.Digest, depth+1, ErrLimit)
		}
		out, err = c.index(ctx, d, b, depth, append(ancestors, d.Digest))
		if err != nil && !errors.Is(err, errNothingLeft) {
			err = fmt.Errorf("index %s: %w", d.Digest, err)
		}
	} else {
		out, err = c.manifest(ctx, d, b, depth == 0)
		if err != nil && !errors.Is(err, errNothingLeft) {
			err = fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
	}
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	c.done[d.Digest] = out
	return out, nil
}

func (c *converter) index(ctx context.Context, d ocispec.Descriptor, b []byte, depth int, ancestors []digest.Digest) (ocispec.Descriptor, error) {
	idx, err := ocidoc.ParseIndex(b, c.cfg.maxManifests)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var children, sociIndexes []ocispec.Descriptor
	for _, child := range idx.Manifests {
		if child.Annotations[annotationReferenceType] == attestationType {
			continue // it attests the source image, not the converted one
		}
		if isSOCIIndex(child) {
			continue // it indexes the source's manifest
		}
		k, ok := ocidoc.KindOf(child.MediaType)
		if !ok {
			return ocispec.Descriptor{}, fmt.Errorf("manifest %s: media type %q: %w",
				untrusted.Short(string(child.Digest)), untrusted.Short(child.MediaType), ErrUnsupported)
		}
		if k == ocidoc.KindManifest && !c.wanted(child.Platform) {
			continue
		}
		out, err := c.node(ctx, child, depth+1, ancestors)
		if errors.Is(err, errNothingLeft) {
			continue
		}
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		out.Platform, out.Annotations, out.ArtifactType = child.Platform, withoutSOCIBinding(child.Annotations), child.ArtifactType
		if c.cfg.soci != nil && k == ocidoc.KindManifest {
			entries := c.sociEntries(out, out.Annotations)
			out, sociIndexes = entries[0], append(sociIndexes, entries[1:]...)
		}
		children = append(children, out)
	}
	if len(children) == 0 {
		return ocispec.Descriptor{}, errNothingLeft
	}
	// SOCI indexes follow the manifests, as soci convert lists them.
	idx.SchemaVersion, idx.MediaType, idx.Manifests = 2, ocispec.MediaTypeImageIndex, append(children, sociIndexes...)
	return c.pushManifest(ctx, idx.MediaType, idx)
}

// wanted reports whether a manifest of platform p is converted, and
// notes which of WithPlatforms' platforms it is.
func (c *converter) wanted(p *ocispec.Platform) bool {
	if len(c.cfg.platforms) == 0 {
		return true
	}
	found := false
	for i, want := range c.cfg.platforms {
		if p != nil && p.OS == want.OS && p.Architecture == want.Architecture &&
			(want.Variant == "" || p.Variant == want.Variant) {
			c.matched[i], found = true, true
		}
	}
	return found
}

func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

func (c *converter) manifest(ctx context.Context, d ocispec.Descriptor, b []byte, root bool) (ocispec.Descriptor, error) {
	m, err := ocidoc.ParseManifest(b, c.cfg.maxLayers)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	cf, err := c.src.Blob(ctx, m.Config)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config: %w", err)
	}
	cb, err := fetchBlob(ctx, cf, m.Config, c.cfg.maxManifestSize)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config %s: %w", untrusted.Short(string(m.Config.Digest)), err)
	}
	ic, err := parseConfig(cb, len(m.Layers))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if root && !c.wanted(&ic.image.Platform) {
		return ocispec.Descriptor{}, errNothingLeft
	}
	if c.cfg.soci != nil {
		return c.sociManifest(ctx, d, m, ic, cb, root)
	}
	layers, patterns, err := c.layers(ctx, d.Digest, m.Layers, ic)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	diffIDs := make([]digest.Digest, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.diffID
		m.Layers[i] = l.desc
	}
	nc, err := ic.withDiffIDs(diffIDs)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(nc), Size: int64(len(nc))}
	if err := c.push(ctx, m.Config, bytes.NewReader(nc)); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	m.Annotations = withoutSOCIBinding(m.Annotations)
	if patterns != "" {
		m.Annotations = maps.Clone(m.Annotations)
		if m.Annotations == nil {
			m.Annotations = make(map[string]string)
		}
		m.Annotations[prefetchAnnotation] = patterns
	}
	m.SchemaVersion, m.MediaType = 2, ocispec.MediaTypeImageManifest
	return c.pushManifest(ctx, m.MediaType, m)
}

// pushManifest writes a manifest or index and returns its descriptor.
func (c *converter) pushManifest(ctx context.Context, mediaType string, v any) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if has, err := c.dst.Has(ctx, d); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("writing %s: %w", d.Digest, err)
	} else if !has {
		if err := c.dst.PushManifest(ctx, d, b); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("writing %s: %w", d.Digest, err)
		}
	}
	return d, nil
}
