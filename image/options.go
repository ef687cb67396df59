package image

import (
	"slices"

	"github.com/lazylayer/lazylayer/internal/limits"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc/soci"
)

const (
	// DefaultMaxManifestSize bounds a manifest, an image index and a
	// config unless WithMaxManifestSize says otherwise: 4 MiB, the
	// limit registries put on manifests.
	DefaultMaxManifestSize = 4 << 20

	// DefaultMaxIndexDepth bounds how many image indexes Open goes
	// through before it reaches a manifest unless WithMaxIndexDepth says
	// otherwise: 4, where images in use have 1 (an index of manifests)
	// and rarely 2 (an index of such indexes).
	DefaultMaxIndexDepth = 4

	// DefaultMaxLayers bounds the layers of a manifest unless
	// WithMaxLayers says otherwise: 1024, eight times the 127 that
	// Docker's overlay2 driver stacks.
	DefaultMaxLayers = 1024

	// DefaultParallelism is how many layers Open opens at once unless
	// WithParallelism says otherwise. Images with more layers take more
	// round trips.
	DefaultParallelism = 32

	// DefaultMaxWholeLayerSize bounds a layer that WithFetchWhole
	// fetches, both the blob and the tar inside it, unless
	// WithMaxWholeLayerSize says otherwise: 16 GiB.
	DefaultMaxWholeLayerSize = 16 << 30
)

// An Option configures Open.
type Option func(*config)

type config struct {
	platform        string
	readerOpts      []reader.Option
	maxManifestSize int64
	maxIndexDepth   int
	maxLayers       int
	parallelism     int
	whole           bool
	wholeDir        string
	maxWhole        int64
	noSOCI          bool          // WithoutSOCI
	sociOpts        []soci.Option // WithSOCIOptions
}

func newConfig(opts []Option) config {
	c := config{
		maxManifestSize: DefaultMaxManifestSize,
		maxIndexDepth:   DefaultMaxIndexDepth,
		maxLayers:       DefaultMaxLayers,
		parallelism:     DefaultParallelism,
		maxWhole:        DefaultMaxWholeLayerSize,
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithPlatform selects the manifest of an image index by platform,
// written os/arch[/variant] ("linux/arm64", "linux/arm/v7"). The
// default is linux and the architecture the program runs on (windows on
// Windows). Aliases are understood (x86_64, aarch64, armhf), and an
// index without the platform's own manifest offers one its processors
// also run, as containerd's matcher does: an older variant (arm/v6 for
// arm/v7, amd64/v2 for amd64/v3), 386 for amd64, arm for arm64. Open
// fails with a *PlatformError when there is none. A manifest that is no
// index is opened whatever its platform.
func WithPlatform(p string) Option {
	return func(c *config) { c.platform = p }
}

// WithReaderOptions passes opts to reader.Open for every layer: a
// cache (reader.WithCache, which Image.Prefetch needs), concurrency,
// limits. Open adds each layer's annotations (reader.WithAnnotations)
// after them.
func WithReaderOptions(opts ...reader.Option) Option {
	return func(c *config) { c.readerOpts = append(slices.Clip(c.readerOpts), opts...) }
}

// layerOptions returns the options of reader.Open for a layer with the
// given annotations.
func (c *config) layerOptions(annotations map[string]string) []reader.Option {
	opts := append([]reader.Option{reader.WithTailHint(layerTailHint)}, c.readerOpts...)
	return append(opts, reader.WithAnnotations(annotations))
}

// layerTailHint is the tail reader.Open fetches first of a layer whose
// annotations do not locate its index, as other tools annotate eStargz
// (with the TOC digest only), unless WithReaderOptions gives another
// (reader.WithTailHint). Open fetches the layers at once, so the tail
// of each costs bandwidth that all share: the reader's default of 1 MiB,
// over a 50 MB/s link, costs as much as a round trip for every layer. A
// layer of a few hundred files has a compressed eStargz TOC of a few
// KiB, which 64 KiB holds; a larger TOC costs one more request, of
// exactly the bytes the tail lacks, and no byte of the tail is wasted.
const layerTailHint = 64 << 10

// WithMaxManifestSize bounds the size of a manifest, an image index and
// the config, as their descriptors state it, checked before any is
// fetched. Non-positive n means DefaultMaxManifestSize.
func WithMaxManifestSize(n int64) Option {
	return func(c *config) { c.maxManifestSize = limits.Or(n, DefaultMaxManifestSize) }
}

// WithMaxIndexDepth bounds how many nested image indexes Open follows.
// Non-positive n means DefaultMaxIndexDepth.
func WithMaxIndexDepth(n int) Option {
	return func(c *config) { c.maxIndexDepth = limits.Or(n, DefaultMaxIndexDepth) }
}

// WithMaxLayers bounds the number of layers of the manifest Open
// accepts. Non-positive n means DefaultMaxLayers.
func WithMaxLayers(n int) Option {
	return func(c *config) { c.maxLayers = limits.Or(n, DefaultMaxLayers) }
}

// WithParallelism bounds how many layers Open opens, or fetches whole,
// at once. Non-positive n means DefaultParallelism.
func WithParallelism(n int) Option {
	return func(c *config) { c.parallelism = limits.Or(n, DefaultParallelism) }
}

// WithFetchWhole makes Open fetch every layer that is not seekable whole
// instead of failing it with ErrNotSeekable, and serve it through a
// seekable copy that it builds in dir ("" means os.TempDir()): see
// "Layers fetched whole" in the package documentation.
func WithFetchWhole(dir string) Option {
	return func(c *config) { c.whole, c.wholeDir = true, dir }
}

// WithMaxWholeLayerSize bounds a layer WithFetchWhole fetches: its blob,
// as its descriptor states it before anything is fetched, and the tar
// stream it decompresses to, as it is read. Non-positive n means
// DefaultMaxWholeLayerSize.
func WithMaxWholeLayerSize(n int64) Option {
	return func(c *config) { c.maxWhole = limits.Or(n, DefaultMaxWholeLayerSize) }
}
