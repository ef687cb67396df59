package convert

import (
	"github.com/lazylayer/lazylayer/internal/limits"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Defaults of the options; see the package documentation for what each
// bounds.
const (
	DefaultMemoryBudget    = 512 << 20
	DefaultParallelism     = 4
	DefaultMaxManifestSize = 4 << 20
	DefaultMaxDepth        = 4
	DefaultMaxManifests    = 256
	DefaultMaxLayers       = 256
	DefaultMaxLayerSize    = 64 << 30
	DefaultMaxFiles        = 1 << 21
	DefaultMaxNameBytes    = 128 << 20
)

// An Option configures Image.
type Option func(*config)

type config struct {
	format    toc.Format
	level     int
	levelSet  bool
	chunkSize int64

	prefetch    prefetchSource
	patterns    prefetch.Patterns
	trace       []prefetch.Access
	plannerOpts []prefetch.Option

	soci *sociConfig // WithSOCI

	platforms   []ocispec.Platform
	parallelism int
	budget      int64
	progress    func(Progress)
	tempDir     string

	maxManifestSize int64
	maxDepth        int
	maxManifests    int
	maxLayers       int
	maxLayerSize    int64
	maxFiles        int
	maxNameBytes    int64
}

type prefetchSource uint8

const (
	prefetchConfig prefetchSource = iota
	prefetchTrace
	prefetchPatterns
	prefetchNone
)

func newConfig(opts []Option) *config {
	c := &config{format: toc.FormatEStargz}
	for _, o := range opts {
		o(c)
	}
	if c.chunkSize <= 0 {
		c.chunkSize = writer.DefaultChunkSize
	}
	if !c.levelSet {
		c.level = writer.DefaultCompressionLevel
		if c.format == toc.FormatZstdChunked {
			c.level = writer.DefaultZstdCompressionLevel
		}
	}
	c.parallelism = limits.Or(c.parallelism, DefaultParallelism)
	c.budget = limits.Or(c.budget, DefaultMemoryBudget)
	c.maxManifestSize = limits.Or(c.maxManifestSize, DefaultMaxManifestSize)
	c.maxDepth = limits.Or(c.maxDepth, DefaultMaxDepth)
	c.maxManifests = limits.Or(c.maxManifests, DefaultMaxManifests)
	c.maxLayers = limits.Or(c.maxLayers, DefaultMaxLayers)
	c.maxLayerSize = limits.Or(c.maxLayerSize, DefaultMaxLayerSize)
	c.maxFiles = limits.Or(c.maxFiles, DefaultMaxFiles)
	c.maxNameBytes = limits.Or(c.maxNameBytes, DefaultMaxNameBytes)
	return c
}

// WithFormat selects the format of the converted layers:
// toc.FormatEStargz (the default) or toc.FormatZstdChunked.
func WithFormat(f toc.Format) Option { return func(c *config) { c.format = f } }

// WithCompressionLevel sets the gzip (eStargz) or zstd (zstd:chunked)
// level, as writer.WithCompressionLevel; the default is the writer's.
func WithCompressionLevel(level int) Option {
	return func(c *config) { c.level, c.levelSet = level, true }
}

// WithChunkSize sets the largest chunk of a file, as
// writer.WithChunkSize; <= 0 selects writer.DefaultChunkSize. Memory
// per layer grows with it.
func WithChunkSize(n int64) Option { return func(c *config) { c.chunkSize = n } }

// WithPrefetchFromConfig prioritises, in every image, the files
// prefetch.FromImageConfig plans from the image's config, planned with
// opts. It is the default.
func WithPrefetchFromConfig(opts ...prefetch.Option) Option {
	return func(c *config) { c.prefetch, c.plannerOpts = prefetchConfig, opts }
}

// WithPrefetchTrace prioritises, in every image, the files of a recorded
// run (prefetch.ParseTrace or prefetch.ParseStrace output), as
// prefetch.FromTrace plans them with opts.
func WithPrefetchTrace(accesses []prefetch.Access, opts ...prefetch.Option) Option {
	return func(c *config) { c.prefetch, c.trace, c.plannerOpts = prefetchTrace, accesses, opts }
}

// WithPrefetchPatterns prioritises, in every image, the files that ps
// matches, as prefetch.FromPatterns plans them with opts.
func WithPrefetchPatterns(ps prefetch.Patterns, opts ...prefetch.Option) Option {
	return func(c *config) { c.prefetch, c.patterns, c.plannerOpts = prefetchPatterns, ps, opts }
}

// WithoutPrefetch prioritises no file: layers stream from source to
// target without being spooled, and manifests get no patterns
// annotation.
func WithoutPrefetch() Option { return func(c *config) { c.prefetch = prefetchNone } }

// WithPlatforms converts, of an image index, only the manifests of these
// platforms (OS and architecture must match, and the variant if given);
// the new index lists only them. A platform that matches no manifest
// makes Image fail with ErrNoPlatform. By default every manifest is
// converted. A single manifest must match one of them.
func WithPlatforms(ps ...ocispec.Platform) Option {
	return func(c *config) { c.platforms = append([]ocispec.Platform(nil), ps...) }
}

// WithParallelism sets how many layers are converted at once, at most;
// the memory budget may allow fewer. <= 0 selects DefaultParallelism.
func WithParallelism(n int) Option { return func(c *config) { c.parallelism = n } }

// WithMemoryBudget sets the bytes of buffers that layers being converted
// at once may hold together (see the package documentation); <= 0
// selects DefaultMemoryBudget.
func WithMemoryBudget(n int64) Option { return func(c *config) { c.budget = n } }

// WithProgress calls fn as each layer is read and written. Calls for
// different layers may come from different goroutines at once.
func WithProgress(fn func(Progress)) Option { return func(c *config) { c.progress = fn } }

// WithTempDir sets where uncompressed layers and converted blobs are
// spooled; the default is os.TempDir().
func WithTempDir(dir string) Option { return func(c *config) { c.tempDir = dir } }

// WithMaxManifestSize bounds a manifest, index or config;
// <= 0 selects DefaultMaxManifestSize.
func WithMaxManifestSize(n int64) Option { return func(c *config) { c.maxManifestSize = n } }

// WithMaxDepth bounds how deep indexes may nest; <= 0 selects
// DefaultMaxDepth.
func WithMaxDepth(n int) Option { return func(c *config) { c.maxDepth = n } }

// WithMaxManifests bounds the manifests and indexes of one image, all
// levels together; <= 0 selects DefaultMaxManifests.
func WithMaxManifests(n int) Option { return func(c *config) { c.maxManifests = n } }

// WithMaxLayers bounds the layers of one manifest; <= 0 selects
// DefaultMaxLayers.
func WithMaxLayers(n int) Option { return func(c *config) { c.maxLayers = n } }

// WithMaxLayerSize bounds a layer blob and its uncompressed tar, each;
// <= 0 selects DefaultMaxLayerSize.
func WithMaxLayerSize(n int64) Option { return func(c *config) { c.maxLayerSize = n } }

// WithMaxFiles bounds the tar entries of one manifest's layers, all
// together, that planning holds in memory; <= 0 selects
// DefaultMaxFiles.
func WithMaxFiles(n int) Option { return func(c *config) { c.maxFiles = n } }

// WithMaxNameBytes bounds the bytes of names and link targets of the
// entries WithMaxFiles counts; <= 0 selects DefaultMaxNameBytes.
func WithMaxNameBytes(n int64) Option { return func(c *config) { c.maxNameBytes = n } }

// Progress reports how far the conversion of one layer has got.
type Progress struct {
	// Manifest is the digest of the source manifest, Index the layer's
	// position in it and Layer its source descriptor.
	Manifest digest.Digest
	Index    int
	Layer    ocispec.Descriptor
	// Read counts the source blob's bytes read so far, Written the
	// converted blob's bytes written.
	Read, Written int64
	// Done is set on the layer's last report, Reused if it was already
	// in the requested format and kept as it was, or, with WithSOCI, if
	// it was not indexed.
	Done, Reused bool
	// Note says, on the last report of a layer that WithSOCI did not
	// index, why: zstd, or under the minimum size.
	Note string
}
