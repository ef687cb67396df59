package convert

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fetchManifest returns the verified bytes of the manifest or index d
// describes.
func fetchManifest(ctx context.Context, src image.Source, d ocispec.Descriptor, max int64) ([]byte, error) {
	return ocidoc.ReadManifest(d, max, func() ([]byte, error) { return src.Manifest(ctx, d) })
}

// checkSize checks that the blob f fetches is of d's size, before any
// of it is fetched.
func checkSize(ctx context.Context, f fetcher.Fetcher, d ocispec.Descriptor) error {
	n, err := f.Size(ctx)
	if err != nil {
		return err
	}
	if n != d.Size {
		return fmt.Errorf("blob of %d bytes, descriptor says %d: %w", n, d.Size, ErrMismatch)
	}
	return nil
}

// fetchBlob returns the verified bytes of a small blob (a config): the
// size is checked before anything is fetched.
func fetchBlob(ctx context.Context, f fetcher.Fetcher, d ocispec.Descriptor, max int64) ([]byte, error) {
	if err := ocidoc.CheckDescriptor(d, max); err != nil {
		return nil, err
	}
	if err := checkSize(ctx, f, d); err != nil {
		return nil, err
	}
	return ocidoc.ReadBlob(ctx, f, d, max)
}

// imageConfig is a config: the fields conversion reads, and every field
// as it came, so that what Image rewrites keeps what it does not know.
type imageConfig struct {
	image  ocispec.Image
	raw    map[string]json.RawMessage
	rootfs map[string]json.RawMessage // raw["rootfs"], decoded
}

// parseConfig decodes a config, a JSON object whose rootfs is an object
// and whose DiffIDs must number layers.
func parseConfig(b []byte, layers int) (*imageConfig, error) {
	img, err := ocidoc.ParseConfig(b, layers)
	if err != nil {
		return nil, err
	}
	c := &imageConfig{image: *img}
	if err := ocidoc.Decode(b, &c.raw); err != nil {
		return nil, err
	}
	// withDiffIDs rewrites rootfs in place: it must be an object, even
	// with no layers (null, which decodes to no map, is not).
	if err := json.Unmarshal(c.raw["rootfs"], &c.rootfs); err != nil || c.rootfs == nil {
		return nil, fmt.Errorf("%w: rootfs is not a JSON object", ErrInvalid)
	}
	return c, nil
}

// withDiffIDs returns the config with diffIDs in place of its own,
// every other field as it came.
func (c *imageConfig) withDiffIDs(diffIDs []digest.Digest) ([]byte, error) {
	ids, err := json.Marshal(diffIDs)
	if err != nil {
		return nil, err
	}
	rootfs := maps.Clone(c.rootfs)
	rootfs["diff_ids"] = ids
	out := maps.Clone(c.raw)
	if out["rootfs"], err = json.Marshal(rootfs); err != nil {
		return nil, err
	}
	return json.Marshal(out)
}
