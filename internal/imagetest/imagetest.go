// Package imagetest reads images back from image stores in tests.
package imagetest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Source is package image's Source, which the stores' tests cannot
// import here without a cycle once image imports the stores.
type Source interface {
	Resolve(ctx context.Context) (ocispec.Descriptor, error)
	Manifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error)
	Blob(ctx context.Context, desc ocispec.Descriptor) (fetcher.Fetcher, error)
}

// ReadBlob returns the whole blob desc describes, fetched from src.
func ReadBlob(t testing.TB, src Source, desc ocispec.Descriptor) []byte {
	t.Helper()
	f, err := src.Blob(context.Background(), desc)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	err = f.Fetch(context.Background(), []fetcher.Range{{Offset: 0, Length: desc.Size}}, func(_ fetcher.Range, b []byte) error {
		got = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Resolve resolves src and returns the descriptor and bytes of its
// manifest, checked against each other, and the manifest parsed.
func Resolve(t testing.TB, src Source) (ocispec.Descriptor, []byte, ocispec.Manifest) {
	t.Helper()
	ctx := context.Background()
	desc, err := src.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, err := src.Manifest(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(data) != desc.Digest || int64(len(data)) != desc.Size {
		t.Fatalf("Resolve = %s (%d bytes), for a manifest of %d bytes, %s", desc.Digest, desc.Size, len(data), digest.FromBytes(data))
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("manifest %s: %v", data, err)
	}
	return desc, data, m
}
