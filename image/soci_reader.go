package image

import (
	"context"
	"fmt"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/reader"
	digest "github.com/opencontainers/go-digest"
)

// sociReaderOptions returns the options of reader.Open that open a layer
// of digest layer with its zTOC, blob, of digest ztoc.
func sociReaderOptions(blob []byte, ztoc, layer digest.Digest) []reader.Option {
	return nil
}

// openZtocLayer opens a gzip or tar layer with its zTOC.
func openZtocLayer(ctx context.Context, f fetcher.Fetcher, opts []reader.Option) (*reader.Layer, error) {
	return nil, fmt.Errorf("zTOC layers: %w", ErrNotSeekable) // until package reader reads them
}
