package ocidoc

import (
	"context"
	_ "crypto/sha256" // the digests of manifests, configs and layers
	_ "crypto/sha512"
	"fmt"
	"io"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// CheckDigest reports whether d is well formed and of an algorithm this
// program can compute (ErrInvalid). A digest that passes has a registered
// algorithm name and an encoded part of that algorithm's length in
// hexadecimal, so that it can name a file.
func CheckDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil { // which checks Available too
		return fmt.Errorf("digest %q: %w: %w", untrusted.Short(string(d)), ErrInvalid, untrusted.Err(err))
	}
	return nil
}

// CheckDescriptor checks what a descriptor promises before anything is
// fetched for it: a digest that passes CheckDigest, and a size from 0 to
// max (ErrInvalid, ErrTooLarge).
func CheckDescriptor(d ocispec.Descriptor, max int64) error {
	if err := CheckDigest(d.Digest); err != nil {
		return err
	}
	if d.Size < 0 {
		return fmt.Errorf("size %d: %w", d.Size, ErrInvalid)
	}
	if d.Size > max {
		return fmt.Errorf("%d bytes, over %d: %w", d.Size, max, ErrTooLarge)
	}
	return nil
}

// Compare checks what was read, n bytes of digest got, against d
// (ErrDigestMismatch).
func Compare(d ocispec.Descriptor, n int64, got digest.Digest) error {
	if n != d.Size {
		return fmt.Errorf("%d bytes, descriptor says %d: %w", n, d.Size, ErrDigestMismatch)
	}
	if got != d.Digest {
		return fmt.Errorf("content has digest %s, descriptor says %s: %w", got, d.Digest, ErrDigestMismatch)
	}
	return nil
}

// Verify checks that b is the content d describes; d's digest must have
// passed CheckDigest.
func Verify(d ocispec.Descriptor, b []byte) error {
	return Compare(d, int64(len(b)), d.Digest.Algorithm().FromBytes(b))
}

// ReadAll reads r to its end, refusing (ErrTooLarge) a length announced
// over max (announced < 0 for none) before reading, and never reading
// more than max+1 bytes.
func ReadAll(r io.Reader, announced, max int64) ([]byte, error) {
	if announced > max {
		return nil, fmt.Errorf("%d bytes, over %d: %w", announced, max, ErrTooLarge)
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("over %d bytes: %w", max, ErrTooLarge)
	}
	return b, nil
}

// ReadManifest returns the verified bytes of the manifest or index d
// describes, which read returns. d is checked with CheckDescriptor
// against max before read is called; what read returns must be within
// max (ErrTooLarge) and d's content (ErrDigestMismatch). read's error is
// returned as it is.
func ReadManifest(d ocispec.Descriptor, max int64, read func() ([]byte, error)) ([]byte, error) {
	if err := CheckDescriptor(d, max); err != nil {
		return nil, err
	}
	b, err := read()
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%d bytes, over %d: %w", len(b), max, ErrTooLarge)
	}
	if err := Verify(d, b); err != nil {
		return nil, err
	}
	return b, nil
}

// ReadBlob returns the verified bytes of a small blob (a config) that f
// fetches, in one request of d's size, after checking d with
// CheckDescriptor against max. f's error is returned as it is.
func ReadBlob(ctx context.Context, f fetcher.Fetcher, d ocispec.Descriptor, max int64) ([]byte, error) {
	if err := CheckDescriptor(d, max); err != nil {
		return nil, err
	}
	b := []byte{}
	if d.Size > 0 {
		err := f.Fetch(ctx, []fetcher.Range{{Length: d.Size}}, func(_ fetcher.Range, data []byte) error {
			b = data
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if err := Verify(d, b); err != nil {
		return nil, err
	}
	return b, nil
}
