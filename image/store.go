package image

import (
	"context"
	"io"

	"github.com/lazylayer/lazylayer/fetcher"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Source is where an image comes from: a repository of a registry, an OCI
// layout directory, a docker-save archive. It is the one seam an image
// store plugs in at; Open and package convert read images through it
// alone. Everything a Source returns is untrusted: callers bound sizes
// and verify digests against the descriptors they asked with.
//
// Implementations are safe for concurrent use.
type Source interface {
	// Resolve returns the descriptor of the manifest or image index the
	// source was opened with (a tag, a digest, or the only image it
	// holds).
	Resolve(ctx context.Context) (ocispec.Descriptor, error)

	// Manifest returns the bytes of the manifest or image index desc
	// describes. It may return them unverified and larger than desc
	// says; the caller checks both.
	Manifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error)

	// Blob returns a range fetcher for the config or layer blob desc
	// describes. The fetcher need not check the blob's digest.
	Blob(ctx context.Context, desc ocispec.Descriptor) (fetcher.Fetcher, error)
}

// Target is where an image goes: a repository of a registry or an OCI
// layout directory. Package convert writes through it alone, children
// before the manifests and indexes that refer to them, and Tag last.
//
// Implementations are safe for concurrent use.
type Target interface {
	// Has reports whether the target already holds the blob, manifest
	// or index desc describes, so that it need not be written again.
	Has(ctx context.Context, desc ocispec.Descriptor) (bool, error)

	// PushBlob stores the config or layer blob desc describes, read
	// from r. It fails, storing nothing under desc's digest, if r does
	// not yield exactly desc.Size bytes of that digest.
	PushBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error

	// PushManifest stores a manifest or image index by digest.
	PushManifest(ctx context.Context, desc ocispec.Descriptor, content []byte) error

	// Tag names desc, already pushed, by the name the target was
	// opened with.
	Tag(ctx context.Context, desc ocispec.Descriptor) error
}
