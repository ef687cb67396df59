package convert

import (
	"context"
	"fmt"
	"io"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// streamRange is how much of a blob one request of a blobReader asks
// for. A blobReader holds at most three: one being read, one waiting,
// one arriving.
const streamRange = 4 << 20

// blobReader reads a blob front to back through its fetcher, one range
// ahead of the reader (fetcher.SequentialReader), and checks the blob's
// digest as it goes: the read that would return io.EOF returns an error
// wrapping ErrMismatch instead if the bytes were not the blob's. Close
// must be called.
type blobReader struct {
	*fetcher.SequentialReader
	desc     ocispec.Descriptor
	verifier digest.Verifier
	read     int64
	onRead   func(int64)
}

// newBlobReader starts reading the blob desc describes, whose size must
// already have been checked against its bound.
func newBlobReader(ctx context.Context, f fetcher.Fetcher, desc ocispec.Descriptor, onRead func(int64)) (*blobReader, error) {
	if err := checkSize(ctx, f, desc); err != nil {
		return nil, err
	}
	return &blobReader{
		SequentialReader: fetcher.NewSequentialReader(ctx, f, desc.Size, streamRange),
		desc:             desc,
		verifier:         desc.Digest.Verifier(),
		onRead:           onRead,
	}, nil
}

func (r *blobReader) Read(p []byte) (int, error) {
	n, err := r.SequentialReader.Read(p)
	r.verifier.Write(p[:n])
	r.read += int64(n)
	if n > 0 && r.onRead != nil {
		r.onRead(r.read)
	}
	if err == io.EOF && !r.verifier.Verified() {
		err = fmt.Errorf("blob content does not have digest %s: %w", r.desc.Digest, ErrMismatch)
	}
	return n, err
}
