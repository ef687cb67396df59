package soci

import "github.com/lazylayer/lazylayer/internal/limits"

// Default limits. They bound what an untrusted zTOC or layer can make this
// package allocate; each is checked before the allocation it bounds.
const (
	// DefaultMaxZtocSize is the default limit on the size of an encoded
	// zTOC, in bytes: 256 MiB, room for about 8000 checkpoints of 32 KiB,
	// a 32 GiB layer at the default span size.
	DefaultMaxZtocSize = 256 << 20

	// DefaultMaxFiles is the default limit on the number of files a zTOC
	// lists, or the indexer records.
	DefaultMaxFiles = 1 << 21

	// DefaultMaxPAXRecords is the default limit on the PAX records of all
	// files of a zTOC together.
	DefaultMaxPAXRecords = 1 << 21

	// DefaultMaxStringBytes is the default limit on the total length of
	// the strings a zTOC's file table decodes to (names, link names, user
	// and group names, PAX records). FlatBuffers lets many fields share
	// one string, so the encoded size alone does not bound it.
	DefaultMaxStringBytes = 128 << 20

	// DefaultMaxSpans is the default limit on the number of spans (and
	// so checkpoints and span digests) of a zTOC: 65536, a 256 GiB layer
	// at the default span size.
	DefaultMaxSpans = 1 << 16

	// DefaultMaxLayerSize is the default limit on the compressed and the
	// uncompressed size of a layer, claimed by a zTOC or met by the
	// indexer, and so on every offset a zTOC holds: 256 GiB.
	DefaultMaxLayerSize = 256 << 30

	// DefaultMaxIndexSize is the default limit on the size of an encoded
	// SOCI index: 4 MiB, the limit registries put on a manifest.
	DefaultMaxIndexSize = 4 << 20

	// DefaultMaxIndexBlobs is the default limit on the layers of a SOCI
	// index, zTOCs and prefetch artifacts together: 2048, a zTOC and a
	// prefetch artifact for each of 1024 image layers.
	DefaultMaxIndexBlobs = 2048

	// DefaultMaxPrefetchSize is the default limit on the size of an
	// encoded prefetch artifact: 1 MiB, some 25000 ranges of spans.
	DefaultMaxPrefetchSize = 1 << 20

	// DefaultSpanSize is the span size the indexer uses unless told
	// otherwise: 4 MiB, soci's default.
	DefaultSpanSize = 4 << 20
)

// An Option configures Decode, DecodeCheckpoints, Index,
// DecodeIndexManifest or DecodePrefetch. Each limit
// option selects its default when given a value <= 0.
type Option func(*config)

type config struct {
	maxZtocSize    int64
	maxFiles       int
	maxPAXRecords  int
	maxStringBytes int64
	maxSpans       int
	maxLayerSize   int64
	spanSize       int64
	buildTool      string

	maxIndexSize    int64
	maxIndexBlobs   int
	maxPrefetchSize int64
}

func newConfig(opts []Option) config {
	c := config{buildTool: DefaultBuildToolIdentifier}
	for _, o := range opts {
		o(&c)
	}
	c.maxZtocSize = limits.Or(c.maxZtocSize, DefaultMaxZtocSize)
	c.maxFiles = limits.Or(c.maxFiles, DefaultMaxFiles)
	c.maxPAXRecords = limits.Or(c.maxPAXRecords, DefaultMaxPAXRecords)
	c.maxStringBytes = limits.Or(c.maxStringBytes, DefaultMaxStringBytes)
	c.maxSpans = limits.Or(c.maxSpans, DefaultMaxSpans)
	c.maxLayerSize = limits.Or(c.maxLayerSize, DefaultMaxLayerSize)
	c.spanSize = limits.Or(c.spanSize, DefaultSpanSize)
	c.maxIndexSize = limits.Or(c.maxIndexSize, DefaultMaxIndexSize)
	c.maxIndexBlobs = limits.Or(c.maxIndexBlobs, DefaultMaxIndexBlobs)
	c.maxPrefetchSize = limits.Or(c.maxPrefetchSize, DefaultMaxPrefetchSize)
	return c
}

// WithMaxZtocSize limits the size of an encoded zTOC, in bytes
// (default DefaultMaxZtocSize).
func WithMaxZtocSize(n int64) Option { return func(c *config) { c.maxZtocSize = n } }

// WithMaxFiles limits the number of files of a zTOC (default
// DefaultMaxFiles).
func WithMaxFiles(n int) Option { return func(c *config) { c.maxFiles = n } }

// WithMaxPAXRecords limits the PAX records of all files of a zTOC
// together (default DefaultMaxPAXRecords).
func WithMaxPAXRecords(n int) Option { return func(c *config) { c.maxPAXRecords = n } }

// WithMaxStringBytes limits the total length of a zTOC's decoded strings,
// in bytes (default DefaultMaxStringBytes).
func WithMaxStringBytes(n int64) Option { return func(c *config) { c.maxStringBytes = n } }

// WithMaxSpans limits the number of spans of a zTOC (default
// DefaultMaxSpans).
func WithMaxSpans(n int) Option { return func(c *config) { c.maxSpans = n } }

// WithMaxLayerSize limits the compressed and uncompressed size of a
// layer, in bytes (default DefaultMaxLayerSize).
func WithMaxLayerSize(n int64) Option { return func(c *config) { c.maxLayerSize = n } }

// WithSpanSize sets the number of uncompressed bytes the indexer puts at
// least between checkpoints (default DefaultSpanSize).
func WithSpanSize(n int64) Option { return func(c *config) { c.spanSize = n } }

// WithBuildToolIdentifier sets the build_tool_identifier of the zTOCs the
// indexer makes (default DefaultBuildToolIdentifier). It is part of the
// zTOC's bytes: to reproduce another tool's zTOC, give its identifier.
func WithBuildToolIdentifier(s string) Option { return func(c *config) { c.buildTool = s } }

// WithMaxIndexSize limits the size of an encoded SOCI index, in bytes
// (default DefaultMaxIndexSize).
func WithMaxIndexSize(n int64) Option { return func(c *config) { c.maxIndexSize = n } }

// WithMaxIndexBlobs limits the layers of a SOCI index, zTOCs and
// prefetch artifacts together (default DefaultMaxIndexBlobs).
func WithMaxIndexBlobs(n int) Option { return func(c *config) { c.maxIndexBlobs = n } }

// WithMaxPrefetchSize limits the size of an encoded prefetch artifact,
// in bytes (default DefaultMaxPrefetchSize).
func WithMaxPrefetchSize(n int64) Option { return func(c *config) { c.maxPrefetchSize = n } }
