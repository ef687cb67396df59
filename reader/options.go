package reader

import (
	"maps"
	"runtime"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/internal/limits"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

const (
	// DefaultTailHint is how many bytes at the end of a blob Open reads in
	// its first request when WithTailHint is not given and the annotations
	// do not locate the index. The TOC of most layers fits in it (the
	// eStargz TOC of the Go toolchain's 15,000 files takes 0.86 MB), so
	// footer and TOC arrive in one round trip.
	DefaultTailHint = 1 << 20

	// DefaultMaxTOCSize bounds the decompressed size of an index when
	// WithMaxTOCSize is not given: toc.DefaultMaxTOCSize, the 150 MiB
	// limit of containers/storage.
	DefaultMaxTOCSize = toc.DefaultMaxTOCSize

	// DefaultMaxChunkSize bounds the chunks a layer serves when
	// WithMaxChunkSize is not given: 64 MiB, 16 times the largest chunk
	// eStargz writers make by default (4 MiB, the reference's and ours)
	// and a thousand times the average content-defined zstd:chunked
	// chunk (64 KiB). containers/storage puts no maximum on its chunks,
	// but cuts at about every 64 KiB of varied content: only 64 MiB of
	// one repeated byte makes a larger one. Chunks of zeros (a sparse
	// file's hole) are exempt: reads serve them without building them.
	DefaultMaxChunkSize = 64 << 20

	// DefaultMaxTarSplitSize bounds the decompressed size of a
	// zstd:chunked tar-split when WithMaxTarSplitSize is not given:
	// zstdchunked.DefaultMaxTarSplitSize, 1 GiB.
	DefaultMaxTarSplitSize = zstdchunked.DefaultMaxTarSplitSize
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
	maxChunkSize  int64
	names         nameLimits
	maxTarSplit   int64
	tailHint      int64
	concurrency   int
	observer      func(Access)
	background    func(error)   // WithBackgroundFetch
	ztoc          []byte        // WithZtoc
	layerDigest   digest.Digest // WithLayerDigest
	requireLayer  bool          // WithRequireLayerDigest
}

func newConfig(opts []Option) config {
	c := config{
		maxTOCSize:   DefaultMaxTOCSize,
		maxChunkSize: DefaultMaxChunkSize,
		names: nameLimits{
			length:  toc.DefaultMaxNameLength,
			depth:   toc.DefaultMaxPathDepth,
			implied: toc.DefaultMaxImpliedDirs,
			bytes:   toc.DefaultMaxNameBytes,
		},
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
// same value toc.TOC.Digest holds; for a zTOC (WithZtoc), the sha256 of the
// zTOC blob. Open then fails with ErrTOCDigest
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
// annotation pins the TOC, and toc.AnnotationIndexPosition, which the
// writer package adds to both formats, locates TOC and footer: Open
// fetches exactly them, in one request, instead of the WithTailHint
// bytes (see the package documentation for how little it trusts it).
// Other annotations are ignored; malformed ones make Open fail with
// ErrCorrupt, and a digest contradicting WithTOCDigest with ErrTOCDigest.
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
	return func(c *config) { c.maxTOCSize = limits.Or(n, DefaultMaxTOCSize) }
}

// WithMaxChunkSize bounds the memory one chunk costs: a read decompresses
// and verifies a whole chunk, from the start of the frame holding it,
// before it returns any of its bytes. Chunks of zeros (zstd:chunked
// "zeros", a sparse file's holes) are exempt: reads copy their bytes from
// a page of zeros, and check their digest once per Layer, hashing the
// run of zeros as it would the data. Open fails with ErrCorrupt if a
// chunk of the index is larger than n bytes, ends more than n bytes into
// its frame (eStargz frames hold several chunks when the blob was written
// with a minimum chunk size), or lies in a frame that could not hold n
// bytes compressed. A read then holds at most n bytes per chunk it loads
// at once (see WithConcurrency). Non-positive n means DefaultMaxChunkSize.
func WithMaxChunkSize(n int64) Option {
	return func(c *config) { c.maxChunkSize = limits.Or(n, DefaultMaxChunkSize) }
}

// nameLimits bound the names of an index; see WithMaxNameLength.
type nameLimits struct {
	length, depth, implied int
	bytes                  int64
}

// decodeOptions passes the limits Open was given to the index decoders.
func (c *config) decodeOptions() []toc.DecodeOption {
	return []toc.DecodeOption{
		toc.WithMaxTOCSize(c.maxTOCSize),
		toc.WithMaxNameLength(c.names.length),
		toc.WithMaxPathDepth(c.names.depth),
		toc.WithMaxImpliedDirs(c.names.implied),
		toc.WithMaxNameBytes(c.names.bytes),
	}
}

// WithMaxNameLength bounds the length in bytes of every name and link
// target the index lists; a longer one makes Open fail with an error
// matching ErrCorrupt and toc.ErrInvalidTOC. Non-positive n means
// toc.DefaultMaxNameLength (4096, PATH_MAX).
//
// This and the three options after it bound the directory tree an index
// makes a Layer build: Open checks them while it decodes the index, and
// again while it builds the tree.
func WithMaxNameLength(n int) Option {
	return func(c *config) { c.names.length = limits.Or(n, toc.DefaultMaxNameLength) }
}

// WithMaxPathDepth bounds the number of elements of every name and link
// target the index lists; a deeper one makes Open fail with an error
// matching ErrCorrupt and toc.ErrInvalidTOC. Non-positive n means
// toc.DefaultMaxPathDepth (256).
func WithMaxPathDepth(n int) Option {
	return func(c *config) { c.names.depth = limits.Or(n, toc.DefaultMaxPathDepth) }
}

// WithMaxImpliedDirs bounds how many directories the index's names may
// imply without listing them (see toc.WithMaxImpliedDirs); more make Open
// fail with an error matching ErrCorrupt and toc.ErrTOCTooLarge.
// Non-positive n means toc.DefaultMaxImpliedDirs (1 Mi).
func WithMaxImpliedDirs(n int) Option {
	return func(c *config) { c.names.implied = limits.Or(n, toc.DefaultMaxImpliedDirs) }
}

// WithMaxNameBytes bounds the total length in bytes of all names and link
// targets the index lists; more make Open fail with an error matching
// ErrCorrupt and toc.ErrTOCTooLarge. Non-positive n means
// toc.DefaultMaxNameBytes (128 MiB).
func WithMaxNameBytes(n int64) Option {
	return func(c *config) { c.names.bytes = limits.Or(n, toc.DefaultMaxNameBytes) }
}

// WithMaxTarSplitSize bounds the decompressed size of the zstd:chunked
// tar-split Open accepts, and so the compressed bytes of it Open fetches;
// larger ones fail with ErrCorrupt. Open also holds a tar-split to what
// its verified TOC's entries can need (zstdchunked.MaxTarSplitSizeFor) before
// fetching it. Non-positive n means DefaultMaxTarSplitSize.
func WithMaxTarSplitSize(n int64) Option {
	return func(c *config) { c.maxTarSplit = limits.Or(n, DefaultMaxTarSplitSize) }
}

// WithTailHint sets how many bytes at the end of the blob Open fetches in
// its first request when the annotations (WithAnnotations) do not locate
// the index. When the index lies within them, Open needs no second
// request; a hint larger than the index wastes bandwidth, a smaller one
// costs a second round trip, for the bytes the tail lacks. Non-positive n
// means DefaultTailHint.
func WithTailHint(n int64) Option {
	return func(c *config) { c.tailHint = limits.Or(n, DefaultTailHint) }
}

// WithConcurrency bounds how many chunks one read fetches and decompresses
// in parallel. Values below 1 mean 1; the default is GOMAXPROCS, or 4 if
// that is less.
func WithConcurrency(n int) Option {
	return func(c *config) { c.concurrency = max(n, 1) }
}
