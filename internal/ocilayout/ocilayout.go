package ocilayout

import (
	"fmt"
	"math"
	"path"

	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BlobPath returns the slash-separated path of blob d in a layout,
// "blobs/<algorithm>/<encoded>", after checking d with ocidoc.CheckDigest.
func BlobPath(d digest.Digest) (string, error) {
	if err := ocidoc.CheckDigest(d); err != nil {
		return "", err
	}
	return path.Join(ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded()), nil
}

// ParseLayoutFile checks the content of an oci-layout file: a JSON object
// whose imageLayoutVersion is 1.0.0.
func ParseLayoutFile(data []byte) error {
	var l ocispec.ImageLayout
	if err := ocidoc.Decode(data, &l); err != nil {
		return fmt.Errorf("%s: %w", ocispec.ImageLayoutFile, err)
	}
	if l.Version != ocispec.ImageLayoutVersion {
		return fmt.Errorf("%w: %s: imageLayoutVersion %q, want %s", ocidoc.ErrInvalid, ocispec.ImageLayoutFile, untrusted.Short(l.Version), ocispec.ImageLayoutVersion)
	}
	return nil
}

// ParseIndex parses an index.json: an image index (ocidoc.ParseHeader)
// with no media type or OCI's, whose manifests each pass
// CheckDescriptor. Every error it returns matches ocidoc.ErrInvalid.
func ParseIndex(data []byte) (*ocispec.Index, error) {
	if _, _, err := ocidoc.ParseHeader(data, ocispec.MediaTypeImageIndex); err != nil {
		return nil, fmt.Errorf("%s: %w", ocispec.ImageIndexFile, err)
	}
	idx, err := ocidoc.ParseIndex(data, math.MaxInt) // bounded by the file's size
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ocispec.ImageIndexFile, err)
	}
	for i, m := range idx.Manifests {
		if err := CheckDescriptor(m); err != nil {
			return nil, fmt.Errorf("%s: manifest %d: %w", ocispec.ImageIndexFile, i, err)
		}
	}
	return idx, nil
}

// CheckDescriptor checks what of desc a store relies on: its digest, and
// a size that is not negative.
func CheckDescriptor(desc ocispec.Descriptor) error {
	return ocidoc.CheckDescriptor(desc, math.MaxInt64)
}

// RefName returns the reference name desc is annotated with, or "".
func RefName(desc ocispec.Descriptor) string { return desc.Annotations[ocispec.AnnotationRefName] }

// Select returns the one descriptor of manifests that ref names by its
// reference-name annotation, or, when ref is empty, the only descriptor.
// Several that name the same digest count as one. It fails with
// ocidoc.ErrNotFound when none answers and ocidoc.ErrAmbiguous when several do.
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
		return ocispec.Descriptor{}, fmt.Errorf("%w: no image", ocidoc.ErrNotFound)
	case n == 0:
		return ocispec.Descriptor{}, fmt.Errorf("%w: no image named %q", ocidoc.ErrNotFound, untrusted.Short(ref))
	case ref == "":
		return ocispec.Descriptor{}, fmt.Errorf("%w: %d images and no name given", ocidoc.ErrAmbiguous, n)
	default:
		return ocispec.Descriptor{}, fmt.Errorf("%w: %d images named %q", ocidoc.ErrAmbiguous, n, untrusted.Short(ref))
	}
}
