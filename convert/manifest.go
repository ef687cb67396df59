package convert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's media types, which image-spec does not define.
const (
	dockerManifestList  = "application/vnd.docker.distribution.manifest.list.v2+json"
	dockerManifest      = "application/vnd.docker.distribution.manifest.v2+json"
	dockerConfig        = "application/vnd.docker.container.image.v1+json"
	dockerLayerGzip     = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	dockerLayerTar      = "application/vnd.docker.image.rootfs.diff.tar"
	dockerLayerZstd     = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	ociLayerNondistGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	ociLayerNondistTar  = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	ociLayerNondistZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
)

// compression is how a layer blob wraps its tar.
type compression uint8

const (
	uncompressed compression = iota
	gzipped
	zstded
)

func (c compression) String() string {
	return [...]string{"uncompressed", "gzip", "zstd"}[c]
}

// layerCompression returns the compression a layer media type announces.
func layerCompression(mediaType string) (compression, bool) {
	switch mediaType {
	case ocispec.MediaTypeImageLayer, dockerLayerTar, ociLayerNondistTar:
		return uncompressed, true
	case ocispec.MediaTypeImageLayerGzip, dockerLayerGzip, ociLayerNondistGzip:
		return gzipped, true
	case ocispec.MediaTypeImageLayerZstd, dockerLayerZstd, ociLayerNondistZstd:
		return zstded, true
	}
	return 0, false
}

// kind is what a manifest-like document is.
type kind uint8

const (
	kindIndex kind = iota + 1
	kindManifest
)

func manifestKind(mediaType string) (kind, bool) {
	switch mediaType {
	case ocispec.MediaTypeImageIndex, dockerManifestList:
		return kindIndex, true
	case ocispec.MediaTypeImageManifest, dockerManifest:
		return kindManifest, true
	}
	return 0, false
}

func isConfig(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageConfig || mediaType == dockerConfig
}

// checkDescriptor checks what a descriptor promises before anything is
// fetched for it: a well-formed digest of an available algorithm and a
// size within max.
func checkDescriptor(d ocispec.Descriptor, max int64) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w: %w", untrusted.Short(string(d.Digest)), ErrInvalid, untrusted.Err(err))
	}
	if d.Size < 0 {
		return fmt.Errorf("size %d: %w", d.Size, ErrInvalid)
	}
	if d.Size > max {
		return fmt.Errorf("%d bytes, over %d: %w", d.Size, max, ErrTooLarge)
	}
	return nil
}

// verify checks that b is the content d describes.
func verify(d ocispec.Descriptor, b []byte) error {
	if int64(len(b)) != d.Size {
		return fmt.Errorf("%d bytes, descriptor says %d: %w", len(b), d.Size, ErrMismatch)
	}
	if got := d.Digest.Algorithm().FromBytes(b); got != d.Digest {
		return fmt.Errorf("content digest is %s: %w", got, ErrMismatch)
	}
	return nil
}

// fetchManifest returns the verified bytes of the manifest or index d
// describes.
func fetchManifest(ctx context.Context, src interface {
	Manifest(context.Context, ocispec.Descriptor) ([]byte, error)
}, d ocispec.Descriptor, max int64) ([]byte, error) {
	if err := checkDescriptor(d, max); err != nil {
		return nil, err
	}
	b, err := src.Manifest(ctx, d)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%d bytes, over %d: %w", len(b), max, ErrTooLarge)
	}
	return b, verify(d, b)
}

// fetchBlob returns the verified bytes of a small blob (a config): the
// size is checked before anything is fetched.
func fetchBlob(ctx context.Context, f fetcher.Fetcher, d ocispec.Descriptor, max int64) ([]byte, error) {
	if err := checkDescriptor(d, max); err != nil {
		return nil, err
	}
	if n, err := f.Size(ctx); err != nil {
		return nil, err
	} else if n != d.Size {
		return nil, fmt.Errorf("blob of %d bytes, descriptor says %d: %w", n, d.Size, ErrMismatch)
	}
	var b []byte
	if d.Size > 0 {
		err := f.Fetch(ctx, []fetcher.Range{{Length: d.Size}}, func(_ fetcher.Range, data []byte) error {
			b = data
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return b, verify(d, b)
}

// versioned is the part every manifest and index starts with.
type versioned struct {
	SchemaVersion int    `json:"schemaVersion"`
	MediaType     string `json:"mediaType"`
}

// decodeStrict decodes a JSON document that must be one object.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, untrusted.Err(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON object", ErrInvalid)
	}
	return nil
}

// parseHeader decodes what kind of document b is: its own mediaType if
// set, else the descriptor's, which must agree with it.
func parseHeader(b []byte, descType string) (kind, string, error) {
	var v versioned
	if err := decodeStrict(b, &v); err != nil {
		return 0, "", err
	}
	if v.SchemaVersion != 2 {
		return 0, "", fmt.Errorf("schema version %d: %w", v.SchemaVersion, ErrUnsupported)
	}
	mt := v.MediaType
	if mt == "" {
		mt = descType
	} else if descType != "" && descType != mt {
		return 0, "", fmt.Errorf("media type %q, descriptor says %q: %w",
			untrusted.Short(mt), untrusted.Short(descType), ErrMismatch)
	}
	k, ok := manifestKind(mt)
	if !ok {
		return 0, "", fmt.Errorf("media type %q: %w", untrusted.Short(mt), ErrUnsupported)
	}
	return k, mt, nil
}

// parseIndex decodes an image index (OCI or Docker manifest list).
func parseIndex(b []byte, maxEntries int) (*ocispec.Index, error) {
	var idx ocispec.Index
	if err := decodeStrict(b, &idx); err != nil {
		return nil, err
	}
	if len(idx.Manifests) > maxEntries {
		return nil, fmt.Errorf("index of %d manifests, over %d: %w", len(idx.Manifests), maxEntries, ErrLimit)
	}
	return &idx, nil
}

// parseManifest decodes an image manifest (OCI or Docker schema 2) and
// checks its config and layer descriptors' types.
func parseManifest(b []byte, maxLayers int) (*ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := decodeStrict(b, &m); err != nil {
		return nil, err
	}
	if !isConfig(m.Config.MediaType) {
		return nil, fmt.Errorf("config media type %q: %w", untrusted.Short(m.Config.MediaType), ErrUnsupported)
	}
	if len(m.Layers) > maxLayers {
		return nil, fmt.Errorf("%d layers, over %d: %w", len(m.Layers), maxLayers, ErrLimit)
	}
	return &m, nil
}

// imageConfig is a config: the fields conversion reads, and every field
// as it came, so that what Image rewrites keeps what it does not know.
type imageConfig struct {
	image ocispec.Image
	raw   map[string]json.RawMessage
}

// parseConfig decodes a config whose DiffIDs must number layers.
func parseConfig(b []byte, layers int) (*imageConfig, error) {
	c := &imageConfig{}
	if err := decodeStrict(b, &c.raw); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &c.image); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, untrusted.Err(err))
	}
	if n := len(c.image.RootFS.DiffIDs); n != layers {
		return nil, fmt.Errorf("config lists %d DiffIDs for %d layers: %w", n, layers, ErrInvalid)
	}
	for _, d := range c.image.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("DiffID %q: %w: %w", untrusted.Short(string(d)), ErrInvalid, untrusted.Err(err))
		}
	}
	return c, nil
}

// withDiffIDs returns the config with diffIDs in place of its own,
// every other field as it came.
func (c *imageConfig) withDiffIDs(diffIDs []digest.Digest) ([]byte, error) {
	var rootfs map[string]json.RawMessage
	if err := json.Unmarshal(c.raw["rootfs"], &rootfs); err != nil {
		return nil, fmt.Errorf("%w: rootfs: %w", ErrInvalid, untrusted.Err(err))
	}
	ids, err := json.Marshal(diffIDs)
	if err != nil {
		return nil, err
	}
	rootfs["diff_ids"] = ids
	out := make(map[string]json.RawMessage, len(c.raw))
	for k, v := range c.raw {
		out[k] = v
	}
	if out["rootfs"], err = json.Marshal(rootfs); err != nil {
		return nil, err
	}
	return json.Marshal(out)
}
