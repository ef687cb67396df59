package image

import (
	"context"
	_ "crypto/sha256" // digests of manifests, configs and layers
	_ "crypto/sha512"
	"encoding/json"
	"fmt"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of Docker's image format (schema 2), which Open reads
// alongside OCI's.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	MediaTypeDockerLayerZstd    = "application/vnd.docker.image.rootfs.diff.tar.zstd"
)

// kind is what a manifest-like document is.
type kind int

const (
	kindManifest kind = iota + 1
	kindIndex
)

// document holds the fields that tell a manifest from an index.
type document struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        json.RawMessage   `json:"config"`
	Manifests     json.RawMessage   `json:"manifests"`
	Annotations   map[string]string `json:"annotations"`
}

// fetchManifest fetches the manifest or index desc names and verifies
// it. Its size is bounded before anything is fetched.
func fetchManifest(ctx context.Context, src Source, desc ocispec.Descriptor, cfg *config) ([]byte, error) {
	if err := checkDescriptor(desc, cfg.maxManifestSize); err != nil {
		return nil, err
	}
	data, err := src.Manifest(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("image: manifest %s: %w", desc.Digest, err)
	}
	if err := verify(desc, data); err != nil {
		return nil, fmt.Errorf("image: manifest %w", err)
	}
	return data, nil
}

// fetchConfig fetches the config desc names, in one request of its
// size, and verifies it.
func fetchConfig(ctx context.Context, src Source, desc ocispec.Descriptor, cfg *config) ([]byte, error) {
	if desc.MediaType != ocispec.MediaTypeImageConfig && desc.MediaType != MediaTypeDockerConfig {
		return nil, fmt.Errorf("image: config %s: media type %q: %w", desc.Digest, untrusted.Short(desc.MediaType), ErrUnsupportedMediaType)
	}
	if err := checkDescriptor(desc, cfg.maxManifestSize); err != nil {
		return nil, err
	}
	f, err := src.Blob(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("image: config %s: %w", desc.Digest, err)
	}
	var data []byte
	err = f.Fetch(ctx, []fetcher.Range{{Length: desc.Size}}, func(_ fetcher.Range, b []byte) error {
		data = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("image: config %s: %w", desc.Digest, err)
	}
	if err := verify(desc, data); err != nil {
		return nil, fmt.Errorf("image: config %w", err)
	}
	return data, nil
}

// checkDescriptor checks what Open needs of a descriptor before fetching
// what it names: a digest it can verify, and a size within limit.
func checkDescriptor(desc ocispec.Descriptor, limit int64) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("image: descriptor digest %q: %w: %w", untrusted.Short(string(desc.Digest)), ErrInvalid, err)
	}
	if desc.Size <= 0 {
		return fmt.Errorf("image: %s: size %d: %w", desc.Digest, desc.Size, ErrInvalid)
	}
	if desc.Size > limit {
		return fmt.Errorf("image: %s: %d bytes, more than the %d-byte limit: %w", desc.Digest, desc.Size, limit, ErrLimit)
	}
	return nil
}

// verify checks data against the size and digest of desc.
func verify(desc ocispec.Descriptor, data []byte) error {
	if int64(len(data)) != desc.Size {
		return fmt.Errorf("%s: %d bytes, descriptor says %d: %w", desc.Digest, len(data), desc.Size, ErrDigestMismatch)
	}
	if got := desc.Digest.Algorithm().FromBytes(data); got != desc.Digest {
		return fmt.Errorf("%s: content has digest %s: %w", desc.Digest, got, ErrDigestMismatch)
	}
	return nil
}

// parseDocument tells a manifest from an index by the descriptor's media
// type, or the document's own when the descriptor has none, or, when
// neither says, by the fields an OCI document without one has.
func parseDocument(desc ocispec.Descriptor, data []byte) (kind, error) {
	var doc document
	if err := json.Unmarshal(data, &doc); err != nil {
		return 0, fmt.Errorf("image: manifest %s: %w: %w", desc.Digest, ErrInvalid, untrusted.Err(err))
	}
	mt := desc.MediaType
	switch {
	case mt == "":
		mt = doc.MediaType
	case doc.MediaType != "" && doc.MediaType != mt:
		return 0, fmt.Errorf("image: manifest %s: descriptor says media type %q, content %q: %w",
			desc.Digest, untrusted.Short(mt), untrusted.Short(doc.MediaType), ErrInvalid)
	}
	if mt == "" && doc.Manifests != nil {
		mt = ocispec.MediaTypeImageIndex
	} else if mt == "" && doc.Config != nil {
		mt = ocispec.MediaTypeImageManifest
	}
	var k kind
	switch mt {
	case ocispec.MediaTypeImageManifest, MediaTypeDockerManifest:
		k = kindManifest
	case ocispec.MediaTypeImageIndex, MediaTypeDockerManifestList:
		k = kindIndex
	default:
		return 0, fmt.Errorf("image: manifest %s: media type %q: %w", desc.Digest, untrusted.Short(mt), ErrUnsupportedMediaType)
	}
	if doc.SchemaVersion != 2 {
		return 0, fmt.Errorf("image: manifest %s: schema version %d: %w", desc.Digest, doc.SchemaVersion, ErrInvalid)
	}
	return k, nil
}

// parseManifest parses and checks an image manifest.
func parseManifest(desc ocispec.Descriptor, data []byte, cfg *config) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("image: manifest %s: %w: %w", desc.Digest, ErrInvalid, untrusted.Err(err))
	}
	if len(m.Layers) > cfg.maxLayers {
		return m, fmt.Errorf("image: manifest %s: %d layers, more than the limit of %d: %w", desc.Digest, len(m.Layers), cfg.maxLayers, ErrLimit)
	}
	for i, l := range m.Layers {
		if err := checkDescriptor(l, 1<<62); err != nil {
			return m, fmt.Errorf("image: manifest %s: layer %d: %w", desc.Digest, i, err)
		}
	}
	return m, nil
}

// selectManifest follows root through image indexes, choosing by
// platform, to an image manifest, and returns its descriptor, its
// parsed content and the indexes it went through.
func selectManifest(ctx context.Context, src Source, root ocispec.Descriptor, cfg *config) (ocispec.Descriptor, ocispec.Manifest, error) {
	want := defaultPlatform()
	if cfg.platform != "" {
		var err error
		if want, err = parsePlatform(cfg.platform); err != nil {
			return root, ocispec.Manifest{}, err
		}
	}
	desc := root
	for depth := 0; ; depth++ {
		data, err := fetchManifest(ctx, src, desc, cfg)
		if err != nil {
			return desc, ocispec.Manifest{}, err
		}
		k, err := parseDocument(desc, data)
		if err != nil {
			return desc, ocispec.Manifest{}, err
		}
		if k == kindManifest {
			m, err := parseManifest(desc, data, cfg)
			return desc, m, err
		}
		if depth >= cfg.maxIndexDepth {
			return desc, ocispec.Manifest{}, fmt.Errorf("image: index %s: more than %d nested indexes: %w", desc.Digest, cfg.maxIndexDepth, ErrLimit)
		}
		var idx ocispec.Index
		if err := json.Unmarshal(data, &idx); err != nil {
			return desc, ocispec.Manifest{}, fmt.Errorf("image: index %s: %w: %w", desc.Digest, ErrInvalid, untrusted.Err(err))
		}
		next, err := choose(desc, idx.Manifests, want)
		if err != nil {
			return desc, ocispec.Manifest{}, err
		}
		desc = next
	}
}

// choose picks the entry of an index that best suits want: a manifest
// of the most preferred compatible platform, or failing that the first
// nested index without a platform, which Open then searches. Among
// equals the first entry wins.
func choose(index ocispec.Descriptor, entries []ocispec.Descriptor, want platform) (ocispec.Descriptor, error) {
	prefs := want.compatible()
	best, rank := -1, len(prefs)
	nested := -1
	var have []string
	more := 0
	for i, e := range entries {
		isIndex := e.MediaType == ocispec.MediaTypeImageIndex || e.MediaType == MediaTypeDockerManifestList
		isManifest := e.MediaType == ocispec.MediaTypeImageManifest || e.MediaType == MediaTypeDockerManifest
		if !isIndex && !isManifest {
			continue
		}
		if e.Platform == nil {
			if isIndex && nested < 0 {
				nested = i
			}
			continue
		}
		p := fromSpec(e.Platform)
		if len(have) < maxListedPlatforms {
			have = append(have, fmt.Sprintf("%q", untrusted.Short(p.String())))
		} else {
			more++
		}
		for r, pref := range prefs[:rank] {
			if p == pref {
				best, rank = i, r
				break
			}
		}
	}
	switch {
	case best >= 0:
		return entries[best], nil
	case nested >= 0:
		return entries[nested], nil
	}
	return ocispec.Descriptor{}, &PlatformError{Want: want.String(), Index: string(index.Digest), Have: have, More: more}
}
