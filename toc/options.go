package toc

import "github.com/lazylayer/lazylayer/internal/limits"

// Default decoding limits. They bound the memory an untrusted index can make
// a decoder, or a reader of the decoded TOC, allocate.
const (
	// DefaultMaxTOCSize is the default limit on the uncompressed size of an
	// index, in bytes: 150 MiB, the limit containers/storage applies.
	DefaultMaxTOCSize = 150 << 20

	// DefaultMaxEntries is the default limit on the number of entries
	// (including per-chunk entries) an index may list.
	DefaultMaxEntries = 1 << 21

	// DefaultMaxNameLength is the default limit on the length of an entry
	// name or link target, in bytes: 4096, Linux's PATH_MAX.
	DefaultMaxNameLength = 4096

	// DefaultMaxPathDepth is the default limit on the number of elements
	// of an entry name or link target. Linux's PATH_MAX admits at most
	// 2048; real layers stay below 64.
	DefaultMaxPathDepth = 256

	// DefaultMaxImpliedDirs is the default limit on the parent directories
	// entry names imply without the index listing them (see
	// WithMaxImpliedDirs). Writers list every directory; a tar that lists
	// only files implies one directory per directory holding files.
	DefaultMaxImpliedDirs = 1 << 20

	// DefaultMaxNameBytes is the default limit on the total length of all
	// entry names and link targets, in bytes. Every name is spelled out in
	// the TOC JSON, where names take well under half of each entry: a TOC
	// within DefaultMaxTOCSize cannot reach it.
	DefaultMaxNameBytes = 128 << 20
)

// A DecodeOption sets a decoding limit. Every codec's decoders take them.
type DecodeOption func(*Limits)

// Limits are the decoding limits DecodeOptions select, for a codec to
// apply to the index it decodes. Each With function documents its field.
type Limits struct {
	MaxTOCSize     int64
	MaxEntries     int
	MaxNameLength  int
	MaxPathDepth   int
	MaxImpliedDirs int
	MaxNameBytes   int64
}

// NewLimits returns the limits opts select, the defaults for the others.
func NewLimits(opts ...DecodeOption) Limits {
	c := Limits{
		MaxTOCSize:     DefaultMaxTOCSize,
		MaxEntries:     DefaultMaxEntries,
		MaxNameLength:  DefaultMaxNameLength,
		MaxPathDepth:   DefaultMaxPathDepth,
		MaxImpliedDirs: DefaultMaxImpliedDirs,
		MaxNameBytes:   DefaultMaxNameBytes,
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithMaxTOCSize limits the uncompressed size of an index to n bytes.
// Decoding stops with ErrTOCTooLarge as soon as more would be needed; no
// more than about n bytes are ever decompressed. A value <= 0 selects
// DefaultMaxTOCSize.
func WithMaxTOCSize(n int64) DecodeOption {
	return func(c *Limits) { c.MaxTOCSize = limits.Or(n, DefaultMaxTOCSize) }
}

// WithMaxEntries limits the number of entries an index may list to n,
// counting each chunk entry. A value <= 0 selects DefaultMaxEntries.
func WithMaxEntries(n int) DecodeOption {
	return func(c *Limits) { c.MaxEntries = limits.Or(n, DefaultMaxEntries) }
}

// WithMaxNameLength limits the length of every entry name and link
// target to n bytes, as the index spells it; a longer one is an error
// wrapping ErrInvalidTOC. A value <= 0 selects DefaultMaxNameLength.
func WithMaxNameLength(n int) DecodeOption {
	return func(c *Limits) { c.MaxNameLength = limits.Or(n, DefaultMaxNameLength) }
}

// WithMaxPathDepth limits every entry name and link target to n
// slash-separated elements, counting names once cleaned ("./a/b/c" has 3)
// and link targets as the index spells them; a deeper one is an error
// wrapping ErrInvalidTOC. A value <= 0 selects DefaultMaxPathDepth.
func WithMaxPathDepth(n int) DecodeOption {
	return func(c *Limits) { c.MaxPathDepth = limits.Or(n, DefaultMaxPathDepth) }
}

// WithMaxImpliedDirs limits to n the parent directories that entry names
// imply without the index listing them first, which a reader must create.
// Decoding counts, for each entry, the parent directories of its name
// that the entry before it does not already imply (by its own parents,
// or by being that directory): for an index in tar order, in which every
// directory's entries follow one another, that is the number of
// directories the index does not list before their contents; for any
// order it is at least the number a reader creates. More is an error
// wrapping ErrTOCTooLarge. A value <= 0 selects DefaultMaxImpliedDirs.
func WithMaxImpliedDirs(n int) DecodeOption {
	return func(c *Limits) { c.MaxImpliedDirs = limits.Or(n, DefaultMaxImpliedDirs) }
}

// WithMaxNameBytes limits the total length of all entry names and link
// targets of an index to n bytes; more is an error wrapping
// ErrTOCTooLarge. A value <= 0 selects DefaultMaxNameBytes.
func WithMaxNameBytes(n int64) DecodeOption {
	return func(c *Limits) { c.MaxNameBytes = limits.Or(n, DefaultMaxNameBytes) }
}
