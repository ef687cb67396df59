package writer

import (
	"fmt"
	"runtime"

	"github.com/lazylayer/lazylayer/toc"
)

const (
	// DefaultChunkSize is the largest piece of a regular file that one
	// compressed member holds unless WithChunkSize says otherwise.
	DefaultChunkSize = 4 << 20

	// DefaultCompressionLevel is the gzip level used unless
	// WithCompressionLevel says otherwise. Measured on a tar of the Go
	// toolchain tree, it gives a blob 1% larger than the reference
	// writer's default (gzip.BestCompression) for about an eighth of its
	// CPU time; level 6 would cost 2.4% in size, level 9 five times the
	// time.
	DefaultCompressionLevel = 7

	// DefaultContentChunkMin is the smallest content-defined chunk of a
	// zstd:chunked file unless WithContentChunkMin says otherwise.
	DefaultContentChunkMin = 1 << 20

	// DefaultZstdCompressionLevel is the zstd level of zstd:chunked blobs
	// unless WithCompressionLevel says otherwise (zstd's own default).
	DefaultZstdCompressionLevel = 3
)

// minZstdIndexLevel is the lowest zstd level of a zstd:chunked blob's TOC
// and tar-split. They are compressed once and fetched by every lazy
// reader; for a layer of 300,000 small files level 7 makes them 7% (TOC)
// and 14% (tar-split) smaller than level 3, for about a second more of
// CPU time.
const minZstdIndexLevel = 7

// An Option configures Build.
type Option func(*config)

type config struct {
	format       toc.Format
	prioritized  []string
	allowMissing bool
	chunkSize    int64
	minChunkSize int64
	fixedChunks  bool
	contentMin   int64
	level        int
	levelSet     bool // WithCompressionLevel was given
	concurrency  int
	tempDir      string
}

func newConfig(opts []Option) (*config, error) {
	c := &config{
		format:      toc.FormatEStargz,
		chunkSize:   DefaultChunkSize,
		contentMin:  DefaultContentChunkMin,
		concurrency: runtime.GOMAXPROCS(0),
	}
	for _, o := range opts {
		o(c)
	}
	f, ok := formats[c.format]
	if !ok {
		return nil, fmt.Errorf("writer: format %v: %w", c.format, ErrInvalidOption)
	}
	if err := f.configure(c); err != nil {
		return nil, err
	}
	if c.chunkSize <= 0 {
		return nil, fmt.Errorf("writer: chunk size %d: %w", c.chunkSize, ErrInvalidOption)
	}
	if c.contentMin < 0 {
		return nil, fmt.Errorf("writer: content-defined chunk minimum %d: %w", c.contentMin, ErrInvalidOption)
	}
	if c.minChunkSize < 0 {
		return nil, fmt.Errorf("writer: minimum chunk size %d: %w", c.minChunkSize, ErrInvalidOption)
	}
	if c.concurrency <= 0 {
		return nil, fmt.Errorf("writer: concurrency %d: %w", c.concurrency, ErrInvalidOption)
	}
	return c, nil
}

// memberLimit is the size beyond which the open member takes no more
// headers: a long run of directories or empty files then spills into a new
// member, which keeps every member, and so the memory, bounded.
func (c *config) memberLimit() int {
	return int(max(c.chunkSize, c.minChunkSize))
}

// WithFormat selects the blob format: toc.FormatEStargz (the default) or
// toc.FormatZstdChunked. See the package documentation for how the formats
// are laid out. Other formats make Build fail with ErrInvalidOption.
func WithFormat(f toc.Format) Option {
	return func(c *config) { c.format = f }
}

// WithPrioritizedFiles lists the files a container is expected to read
// first. They are written first, in this order, each preceded by its parent
// directories and, for a hardlink, by its target; a .prefetch.landmark entry
// then marks the end of the region a lazy reader should fetch up front.
//
// Names are matched as readers match them: "a/b", "/a/b" and "./a/b" denote
// the same file. Unless WithAllowMissingPrioritized is given, a name that is
// not in the input makes Build fail with ErrPrioritizedNotFound.
//
// Reordering needs random access to the input, so Build spools the
// (decompressed) input to a temporary file when this list is not empty,
// unless the input is an uncompressed tar it can read in place: an
// io.ReaderAt and io.Seeker positioned at its start, such as an *os.File
// or a bytes.Reader, which must not change while Build runs. Without the
// list the input is streamed, and a .no.prefetch.landmark entry comes
// first.
//
// zstd:chunked blobs must decompress to the input tar unchanged, so their
// entries cannot be reordered: with toc.FormatZstdChunked a non-empty list
// makes Build fail with ErrInvalidOption rather than silently write a blob
// without the prefetch region the caller asked for.
func WithPrioritizedFiles(names []string) Option {
	return func(c *config) { c.prioritized = append([]string(nil), names...) }
}

// WithAllowMissingPrioritized makes Build skip prioritised names that are
// not in the input instead of failing; Result.MissingPrioritized lists them.
func WithAllowMissingPrioritized() Option {
	return func(c *config) { c.allowMissing = true }
}

// WithChunkSize sets the largest piece of a regular file that one member
// holds; larger files are split into chunks, each verifiable and fetchable
// on its own. The default is DefaultChunkSize. Memory use grows with it.
// zstd:chunked chunks are content-defined (see WithContentChunkMin); the
// size only caps them, unless WithFixedChunks is given.
func WithChunkSize(size int64) Option {
	return func(c *config) { c.chunkSize = size }
}

// WithFixedChunks makes a zstd:chunked blob cut files into chunks of the
// chunk size (WithChunkSize) instead of content-defined ones, as estargz's
// zstdchunked compressor does. At 4 MiB that compresses a little better
// (0.3% on the Go toolchain), but a lazy read fetches and decompresses a
// whole chunk, and an edit inside a file changes every chunk after it
// rather than one or two. eStargz chunks are always fixed.
func WithFixedChunks() Option {
	return func(c *config) { c.fixedChunks = true }
}

// WithContentChunkMin sets the smallest content-defined chunk of a
// zstd:chunked file: a chunk ends at the first boundary of
// containers/storage's rolling sum (one about every 64 KiB) at least size
// bytes past its start, or at the chunk size (WithChunkSize). Chunks then
// average about size + 64 KiB, files of up to size bytes are one chunk,
// and each chunk ends where one of containers/storage's does, unless the
// chunk size ends it. The default is DefaultContentChunkMin (1 MiB); zero cuts at every
// boundary, as containers/storage does. A negative size makes Build fail
// with ErrInvalidOption. The package documentation weighs size and speed
// against deduplication and lazy reads.
func WithContentChunkMin(size int64) Option {
	return func(c *config) { c.contentMin = size }
}

// WithMinChunkSize lets small files share a member: a file's data starts a
// new member only once the open member holds at least size uncompressed
// bytes, which compresses better at the price of coarser fetches. Zero (the
// default) gives every non-empty file its own member.
//
// Unlike the reference implementation, which counts compressed bytes, the
// threshold counts uncompressed bytes, so that members can be compressed in
// parallel and the output does not depend on the concurrency.
func WithMinChunkSize(size int64) Option {
	return func(c *config) { c.minChunkSize = size }
}

// WithCompressionLevel sets the compression level. For eStargz it is the
// gzip level, from gzip.HuffmanOnly to gzip.BestCompression (-2 to 9 as in
// compress/gzip; the default is DefaultCompressionLevel); at levels 7 to 9,
// members of at most 1 KiB are compressed at level 6, whose encoder costs
// far less to start for almost the same result. For zstd:chunked
// it is the zstd level, 1 to 22 as the zstd command line counts, mapped to
// the nearest klauspost/compress encoder speed: below 3 fastest, 3-5
// default, 6-9 better, 10 and above best (the default is
// DefaultZstdCompressionLevel). The TOC and tar-split of zstd:chunked are
// compressed at this level or 7, whichever is higher.
func WithCompressionLevel(level int) Option {
	return func(c *config) { c.level, c.levelSet = level, true }
}

// indexLevel is the zstd level of a zstd:chunked TOC and tar-split.
func (c *config) indexLevel() int { return max(c.level, minZstdIndexLevel) }

// WithConcurrency sets how many members are compressed at once. The default
// is runtime.GOMAXPROCS(0). It changes speed and memory, never the output.
func WithConcurrency(n int) Option {
	return func(c *config) { c.concurrency = n }
}

// WithTempDir sets the directory for the spool file that reordering needs
// (see WithPrioritizedFiles). The default is os.TempDir().
func WithTempDir(dir string) Option {
	return func(c *config) { c.tempDir = dir }
}
