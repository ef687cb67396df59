package writer

import (
	"context"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/lazylayer/lazylayer/toc"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// A blobFormat is all Build knows of one format it writes. newConfig,
// Build and the Result dispatch through formats only: a format Build can
// write is one value of this interface and one entry in formats.
type blobFormat interface {
	// configure applies the format's defaults to c, such as its
	// compression level, and rejects the options it cannot honour with
	// ErrInvalidOption.
	configure(c *config) error
	// build writes the blob of the tar stream in to w and fills res. ra
	// reads the same input in place, or is nil.
	build(ctx context.Context, w io.Writer, in io.Reader, ra io.ReaderAt, cfg *config, res *Result) error
	// mediaType is the OCI media type of the blobs build writes.
	mediaType() string
}

// formats are the formats Build writes, by WithFormat's value.
var formats = map[toc.Format]blobFormat{
	toc.FormatEStargz:     eStargzFormat{},
	toc.FormatZstdChunked: zstdChunkedFormat{},
}

// eStargzFormat writes gzip members, files in the order
// WithPrioritizedFiles asks for, small files sharing members.
type eStargzFormat struct{}

func (eStargzFormat) configure(c *config) error {
	if !c.levelSet {
		c.level = DefaultCompressionLevel
	}
	if _, err := gzip.NewWriterLevel(io.Discard, c.level); err != nil {
		return fmt.Errorf("writer: gzip compression level %d: %w", c.level, ErrInvalidOption)
	}
	return nil
}

func (eStargzFormat) mediaType() string { return ocispec.MediaTypeImageLayerGzip }

// zstdChunkedFormat writes one zstd frame per chunk, in the input's
// order, with a tar-split that rebuilds the input.
type zstdChunkedFormat struct{}

func (zstdChunkedFormat) configure(c *config) error {
	if !c.levelSet {
		c.level = DefaultZstdCompressionLevel
	}
	if c.level < 1 || c.level > 22 {
		return fmt.Errorf("writer: zstd compression level %d: %w", c.level, ErrInvalidOption)
	}
	if len(c.prioritized) > 0 {
		return fmt.Errorf("writer: zstd:chunked keeps the input's order, prioritized files cannot be moved: %w", ErrInvalidOption)
	}
	if c.minChunkSize > 0 {
		return fmt.Errorf("writer: zstd:chunked gives every chunk its own frame, files cannot share one: %w", ErrInvalidOption)
	}
	return nil
}

func (zstdChunkedFormat) build(ctx context.Context, w io.Writer, in io.Reader, _ io.ReaderAt, cfg *config, res *Result) error {
	return buildZstdChunked(ctx, w, in, cfg, res)
}

func (zstdChunkedFormat) mediaType() string { return ocispec.MediaTypeImageLayerZstd }
