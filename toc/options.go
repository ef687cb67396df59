package toc

// Default decoding limits. They bound the memory an untrusted index can make
// a decoder allocate.
const (
	// DefaultMaxTOCSize is the default limit on the uncompressed size of an
	// index, in bytes: 150 MiB, the limit containers/storage applies.
	DefaultMaxTOCSize = 150 << 20

	// DefaultMaxEntries is the default limit on the number of entries
	// (including per-chunk entries) an index may list.
	DefaultMaxEntries = 1 << 21
)

// A DecodeOption configures a decoder of this package.
type DecodeOption func(*decodeConfig)

type decodeConfig struct {
	maxTOCSize int64
	maxEntries int
}

func newDecodeConfig(opts []DecodeOption) decodeConfig {
	c := decodeConfig{maxTOCSize: DefaultMaxTOCSize, maxEntries: DefaultMaxEntries}
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
	return func(c *decodeConfig) {
		if n <= 0 {
			n = DefaultMaxTOCSize
		}
		c.maxTOCSize = n
	}
}

// WithMaxEntries limits the number of entries an index may list to n,
// counting each chunk entry. A value <= 0 selects DefaultMaxEntries.
func WithMaxEntries(n int) DecodeOption {
	return func(c *decodeConfig) {
		if n <= 0 {
			n = DefaultMaxEntries
		}
		c.maxEntries = n
	}
}
