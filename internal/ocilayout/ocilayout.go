package ocilayout

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"

	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The sentinel errors the stores re-export, so that callers of either
// branch on the same values.
var (
	// ErrNotFound: no image of that name, or no such blob or member.
	ErrNotFound = errors.New("not found")
	// ErrAmbiguous: more than one image answers the reference.
	ErrAmbiguous = errors.New("ambiguous reference")
	// ErrInvalid: malformed index, layout file, manifest list or digest.
	ErrInvalid = errors.New("invalid")
	// ErrTooLarge: over a bound.
	ErrTooLarge = errors.New("too large")
	// ErrDigestMismatch: content of another size or digest than its
	// descriptor says.
	ErrDigestMismatch = errors.New("content does not match its descriptor")
)

// CheckDigest reports whether d is well formed and of an algorithm this
// program can compute. A digest that passes names a file inside blobs/: its
// algorithm is a registered name and its encoded part hexadecimal.
func CheckDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: digest %q: %w", ErrInvalid, untrusted.Short(string(d)), untrusted.Err(err))
	}
	if !d.Algorithm().Available() {
		return fmt.Errorf("%w: digest %q: algorithm not available", ErrInvalid, untrusted.Short(string(d)))
	}
	return nil
}

// BlobPath returns the slash-separated path of blob d in a layout,
// "blobs/<algorithm>/<encoded>", after checking d with CheckDigest.
func BlobPath(d digest.Digest) (string, error) {
	if err := CheckDigest(d); err != nil {
		return "", err
	}
	return path.Join(ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded()), nil
}

// ParseLayoutFile checks the content of an oci-layout file: a JSON object
// whose imageLayoutVersion is 1.0.0.
func ParseLayoutFile(data []byte) error {
	var l ocispec.ImageLayout
	if err := json.Unmarshal(data, &l); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, ocispec.ImageLayoutFile, untrusted.Err(err))
	}
	if l.Version != ocispec.ImageLayoutVersion {
		return fmt.Errorf("%w: %s: imageLayoutVersion %q, want %s", ErrInvalid, ocispec.ImageLayoutFile, untrusted.Short(l.Version), ocispec.ImageLayoutVersion)
	}
	return nil
}

// ParseIndex parses an index.json: one JSON object of schema version 2,
// with no media type or that of an image index, whose manifests each have a
// digest that passes CheckDigest and a size that is not negative.
func ParseIndex(data []byte) (*ocispec.Index, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, ocispec.ImageIndexFile, untrusted.Err(err))
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w: %s: schemaVersion %d, want 2", ErrInvalid, ocispec.ImageIndexFile, idx.SchemaVersion)
	}
	if idx.MediaType != "" && idx.MediaType != ocispec.MediaTypeImageIndex {
		return nil, fmt.Errorf("%w: %s: mediaType %q", ErrInvalid, ocispec.ImageIndexFile, untrusted.Short(idx.MediaType))
	}
	for i, m := range idx.Manifests {
		if err := CheckDescriptor(m); err != nil {
			return nil, fmt.Errorf("%s: manifest %d: %w", ocispec.ImageIndexFile, i, err)
		}
	}
	return &idx, nil
}

// CheckDescriptor checks what of desc a store relies on: its digest and
// its size.
func CheckDescriptor(desc ocispec.Descriptor) error {
	if err := CheckDigest(desc.Digest); err != nil {
		return err
	}
	if desc.Size < 0 {
		return fmt.Errorf("%w: %s: size %d", ErrInvalid, desc.Digest, desc.Size)
	}
	return nil
}

// RefName returns the reference name desc is annotated with, or "".
func RefName(desc ocispec.Descriptor) string { return desc.Annotations[ocispec.AnnotationRefName] }

// Select returns the one descriptor of manifests that ref names by its
// reference-name annotation, or, when ref is empty, the only descriptor.
// Several that name the same digest count as one. It fails with
// ErrNotFound when none answers and ErrAmbiguous when several do.
func Select(manifests []ocispec.Descriptor, ref string) (ocispec.Descriptor, error) {
	var (
		found ocispec.Descriptor
		n     int
	)
	for _, m := range manifests {
		if ref != "" && RefName(m) != ref {
			continue
		}
		if n > 0 && m.Digest == found.Digest {
			continue
		}
		if n == 0 {
			found = m
		}
		n++
	}
	switch {
	case n == 1:
		return found, nil
	case n == 0 && ref == "":
		return ocispec.Descriptor{}, fmt.Errorf("%w: no image", ErrNotFound)
	case n == 0:
		return ocispec.Descriptor{}, fmt.Errorf("%w: no image named %q", ErrNotFound, untrusted.Short(ref))
	case ref == "":
		return ocispec.Descriptor{}, fmt.Errorf("%w: %d images and no name given", ErrAmbiguous, n)
	default:
		return ocispec.Descriptor{}, fmt.Errorf("%w: %d images named %q", ErrAmbiguous, n, untrusted.Short(ref))
	}
}

// Verify checks that data has the size and digest desc says, whose digest
// passed CheckDigest.
func Verify(desc ocispec.Descriptor, data []byte) error {
	if int64(len(data)) != desc.Size || desc.Digest.Algorithm().FromBytes(data) != desc.Digest {
		return ErrDigestMismatch
	}
	return nil
}
