package image

import (
	"context"
	"fmt"
	"math"

	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of Docker's image format (schema 2), which Open reads
// alongside OCI's.
const (
	MediaTypeDockerManifest     = ocidoc.MediaTypeDockerManifest
	MediaTypeDockerManifestList = ocidoc.MediaTypeDockerManifestList
	MediaTypeDockerConfig       = ocidoc.MediaTypeDockerConfig
	MediaTypeDockerLayer        = ocidoc.MediaTypeDockerLayer
	MediaTypeDockerForeignLayer = ocidoc.MediaTypeDockerForeignLayer
	MediaTypeDockerLayerZstd    = ocidoc.MediaTypeDockerLayerZstd
)

// shortDigest is a descriptor's digest for an error message: cut short,
// since it may be one that failed its check.
func shortDigest(desc ocispec.Descriptor) string { return untrusted.Short(string(desc.Digest)) }

// fetchManifest fetches the manifest or index desc names and verifies
// it. Its size is bounded before anything is fetched.
func fetchManifest(ctx context.Context, src Source, desc ocispec.Descriptor, cfg *config) ([]byte, error) {
	data, err := ocidoc.ReadManifest(desc, cfg.maxManifestSize, func() ([]byte, error) { return src.Manifest(ctx, desc) })
	if err != nil {
		return nil, fmt.Errorf("image: manifest %s: %w", shortDigest(desc), err)
	}
	return data, nil
}

// fetchConfig fetches the config desc names, in one request of its
// size, and verifies it.
func fetchConfig(ctx context.Context, src Source, desc ocispec.Descriptor, cfg *config) ([]byte, error) {
	data, err := func() ([]byte, error) {
		if err := ocidoc.CheckDescriptor(desc, cfg.maxManifestSize); err != nil {
			return nil, err
		}
		f, err := src.Blob(ctx, desc)
		if err != nil {
			return nil, err
		}
		return ocidoc.ReadBlob(ctx, f, desc, cfg.maxManifestSize)
	}()
	if err != nil {
		return nil, fmt.Errorf("image: config %s: %w", shortDigest(desc), err)
	}
	return data, nil
}

// parseManifest parses and checks an image manifest, and the descriptor
// of each layer: one Open can fetch, of a size above 0.
func parseManifest(desc ocispec.Descriptor, data []byte, cfg *config) (ocispec.Manifest, error) {
	m, err := ocidoc.ParseManifest(data, cfg.maxLayers)
	if err != nil {
		return ocispec.Manifest{}, fmt.Errorf("image: manifest %s: %w", desc.Digest, err)
	}
	for i, l := range m.Layers {
		err := ocidoc.CheckDescriptor(l, math.MaxInt64)
		if err == nil && l.Size == 0 {
			err = fmt.Errorf("size 0: %w", ErrInvalid)
		}
		if err != nil {
			return ocispec.Manifest{}, fmt.Errorf("image: manifest %s: layer %d: %w", desc.Digest, i, err)
		}
	}
	return *m, nil
}

// selectManifest follows root through image indexes, choosing by
// platform, to an image manifest, and returns its descriptor and its
// parsed content. When it chooses a manifest from an index, it calls
// chosen, if not nil, with the manifest's descriptor and the index's
// entries before it fetches the manifest.
func selectManifest(ctx context.Context, src Source, root ocispec.Descriptor, cfg *config,
	chosen func(ocispec.Descriptor, []ocispec.Descriptor)) (ocispec.Descriptor, ocispec.Manifest, error) {
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
		k, _, err := ocidoc.ParseHeader(data, desc.MediaType)
		if err != nil {
			return desc, ocispec.Manifest{}, fmt.Errorf("image: manifest %s: %w", desc.Digest, err)
		}
		if k == ocidoc.KindManifest {
			m, err := parseManifest(desc, data, cfg)
			return desc, m, err
		}
		if depth >= cfg.maxIndexDepth {
			return desc, ocispec.Manifest{}, fmt.Errorf("image: index %s: more than %d nested indexes: %w", desc.Digest, cfg.maxIndexDepth, ErrLimit)
		}
		idx, err := ocidoc.ParseIndex(data, math.MaxInt)
		if err != nil {
			return desc, ocispec.Manifest{}, fmt.Errorf("image: index %s: %w", desc.Digest, err)
		}
		next, err := choose(desc, idx.Manifests, want)
		if err != nil {
			return desc, ocispec.Manifest{}, err
		}
		if k, _ := ocidoc.KindOf(next.MediaType); k == ocidoc.KindManifest && chosen != nil {
			chosen(next, idx.Manifests)
		}
		desc = next
	}
}

// choose picks the entry of an index that best suits want: a manifest
// of the most preferred compatible platform, or failing that the first
// nested index without a platform, which Open then searches. Among
// equals the first entry wins. Entries with an artifactType are
// artifacts about an image, not images: a SOCI index is an image
// manifest listed with the platform of the manifest it indexes.
func choose(index ocispec.Descriptor, entries []ocispec.Descriptor, want platform) (ocispec.Descriptor, error) {
	prefs := want.compatible()
	best, rank := -1, len(prefs)
	nested := -1
	var have []string
	more := 0
	for i, e := range entries {
		k, ok := ocidoc.KindOf(e.MediaType)
		if !ok || e.ArtifactType != "" {
			continue
		}
		isIndex := k == ocidoc.KindIndex
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
