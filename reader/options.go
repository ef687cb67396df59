package reader

import (
	"maps"
	"runtime"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

const (
	// DefaultTailHint is how many bytes at the end of a blob Open reads in
	// its first request when WithTailHint is not given. The TOC of most
	// layers fits in it, so footer and TOC arrive in one round trip.
	DefaultTailHint = 1 << 20

	// DefaultMaxTOCSize bounds the decompressed size of an index when
	// WithMaxTOCSize is not given: toc.DefaultMaxTOCSize, the 150 MiB
	// limit of containers/storage.
	DefaultMaxTOCSize = toc.DefaultMaxTOCSize

	// DefaultMaxTarSplitSize bounds the decompressed size of a
	// zstd:chunked tar-split when WithMaxTarSplitSize is not given:
	// toc.DefaultMaxTarSplitSize, 1 GiB.
	DefaultMaxTarSplitSize = toc.DefaultMaxTarSplitSize
)

// minConcurrency is the least default concurrency: chunk loads wait on the
// network as much as on the CPU, so even one core gains from overlapping
// a few of them.
const minConcurrency = 4

// An Option configures Open.
type Option func(*config)

type config struct {
	tocDigest   digest.Digest
	annotations map[string]string
	cache       cache.Cache
	// cacheVerifies is set when cache promises to return only data
	// matching its key.
	cacheVerifies bool
	maxTOCSize    int64
	maxTarSplit   int64
	tailHint      int64
	concurrency   int
	observer      func(Access)
	background    func(error) // WithBackgroundFetch
}

func newConfig(opts []Option) config {
	c := config{
		maxTOCSize:  DefaultMaxTOCSize,
		maxTarSplit: DefaultMaxTarSplitSize,
		tailHint:    DefaultTailHint,
		concurrency: max(runtime.GOMAXPROCS(0), minConcurrency),
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithTOCDigest pins the index to d, normally from the layer descriptor's
// annotations: for eStargz the TOC digest (sha256 of the TOC JSON), for
// zstd:chunked the manifest checksum (sha256 of the compressed TOC), the
// same value toc.TOC.Digest holds. Open then fails with ErrTOCDigest
// unless the index it reads has exactly that digest. Without it the index is only
// checked for consistency with itself: the blob's content is still
// verified chunk by chunk, but against an index nobody vouched for.
func WithTOCDigest(d digest.Digest) Option {
	return func(c *config) { c.tocDigest = d }
}

// WithAnnotations gives Open the layer descriptor's annotations. For a
// zstd:chunked layer (manifest-checksum and manifest-position, optionally
// tarsplit-position) they pin the compressed TOC, as WithTOCDigest does,
// and locate the TOC and tar-split, so that Open fetches both in one
// request and never reads the footer. For an eStargz layer the TOC digest
// annotation pins the TOC. Other annotations are ignored; malformed ones
// make Open fail with ErrCorrupt, and a digest contradicting WithTOCDigest
// with ErrTOCDigest.
func WithAnnotations(a map[string]string) Option {
	return func(c *config) { c.annotations = maps.Clone(a) }
}

// WithCache makes the layer look chunks up in c before fetching them, and
// add every chunk it fetched and verified. Chunks are keyed by their
// digest, so one cache can serve many layers and deduplicates chunks
// shared between them. What c returns is hashed and checked before use,
// unless c is a cache.Verifying that reports it checks content itself.
func WithCache(c cache.Cache) Option {
	return func(cfg *config) {
		cfg.cache = c
		v, ok := c.(cache.Verifying)
		cfg.cacheVerifies = ok && v.VerifiesContent()
	}
}

// WithMaxTOCSize bounds the decompressed size of the index Open accepts;
// larger indexes fail with ErrCorrupt. Non-positive n means
// DefaultMaxTOCSize.
func WithMaxTOCSize(n int64) Option {
	return func(c *config) {
		if n <= 0 {
			n = DefaultMaxTOCSize
		}
		c.maxTOCSize = n
	}
}

// WithMaxTarSplitSize bounds the decompressed size of the zstd:chunked
// tar-split Open accepts, and so the compressed bytes of it Open fetches;
// larger ones fail with ErrCorrupt. Open also holds a tar-split to what
// its verified TOC's entries can need (toc.MaxTarSplitSizeFor) before
// fetching it. Non-positive n means DefaultMaxTarSplitSize.
func WithMaxTarSplitSize(n int64) Option {
	return func(c *config) {
		if n <= 0 {
			n = DefaultMaxTarSplitSize
		}
		c.maxTarSplit = n
	}
}

// WithTailHint sets how many bytes at the end of the blob Open fetches in
// its first request. When the index lies within them, Open needs no second
// request; a hint larger than the index wastes bandwidth, a smaller one
// costs a second round trip. Non-positive n means DefaultTailHint.
func WithTailHint(n int64) Option {
	return func(c *config) {
		if n <= 0 {
			n = DefaultTailHint
		}
		c.tailHint = n
	}
}

// WithConcurrency bounds how many chunks one read fetches and decompresses
// in parallel. Values below 1 mean 1; the default is GOMAXPROCS, or 4 if
// that is less.
func WithConcurrency(n int) Option {
	return func(c *config) { c.concurrency = max(n, 1) }
}
