package soci

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"strconv"

	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types and annotations of a SOCI index, as soci-snapshotter
// writes and reads them.
const (
	// MediaTypeIndexV1 is the config media type (and artifact type) of a
	// v1 SOCI index, bound to its image by its subject and found through
	// the referrers API.
	MediaTypeIndexV1 = "application/vnd.amazon.soci.index.v1+json"
	// MediaTypeIndexV2 is the config media type of a v2 SOCI index, and
	// the artifactType of its entry in an image index: bound to its
	// image by AnnotationIndexDigest.
	MediaTypeIndexV2 = "application/vnd.amazon.soci.index.v2+json"
	// MediaTypeZtoc is the media type of a zTOC in a SOCI index.
	MediaTypeZtoc = "application/octet-stream"
	// MediaTypePrefetch is the media type of a prefetch artifact.
	MediaTypePrefetch = "application/vnd.amazon.soci.prefetch.v1+json"

	// AnnotationImageLayerDigest names, on a zTOC or prefetch artifact
	// descriptor, the image layer it is for.
	AnnotationImageLayerDigest = "com.amazon.soci.image-layer-digest"
	// AnnotationImageLayerMediaType gives, on a zTOC descriptor, the
	// media type of the image layer.
	AnnotationImageLayerMediaType = "com.amazon.soci.image-layer-mediaType"
	// AnnotationSpanSize gives, on a zTOC descriptor, the span size the
	// zTOC was built with.
	AnnotationSpanSize = "com.amazon.soci.span-size"
	// AnnotationBuildToolIdentifier names, on a SOCI index, the tool that
	// built it.
	AnnotationBuildToolIdentifier = "com.amazon.soci.build-tool-identifier"
	// AnnotationIndexDigest is the annotation of a v2 image manifest
	// (and of its entry in the image index) that names its SOCI index.
	AnnotationIndexDigest = "com.amazon.soci.index-digest"
	// AnnotationImageManifestDigest is the annotation of a SOCI index's
	// entry in an image index that names the image manifest it indexes.
	AnnotationImageManifestDigest = "com.amazon.soci.image-manifest-digest"
)

// emptyConfig is the config blob of every SOCI index: soci serialises
// an index as an OCI 1.0 manifest, which must have one.
var emptyConfig = []byte("{}")

// EmptyConfig returns the config blob of a SOCI index, "{}", which must
// be pushed with it.
func EmptyConfig() []byte { return bytes.Clone(emptyConfig) }

// IndexVersion is the version of a SOCI index: how it is bound to the
// image manifest it indexes.
type IndexVersion uint8

const (
	// IndexV1 indexes are bound by their subject, and found through the
	// referrers API. This package reads them only.
	IndexV1 IndexVersion = 1
	// IndexV2 indexes are bound by AnnotationIndexDigest on the image
	// manifest, and listed with it in an image index.
	IndexV2 IndexVersion = 2
)

// MediaType returns the config media type of an index of version v.
func (v IndexVersion) MediaType() string {
	if v == IndexV1 {
		return MediaTypeIndexV1
	}
	return MediaTypeIndexV2
}

// IndexManifest is a SOCI index: an OCI image manifest whose config
// says which version it is and whose layers are the zTOCs of the image
// layers it indexes, then the prefetch artifacts of some of them.
type IndexManifest struct {
	Version IndexVersion
	// Ztocs are the zTOCs, in the order of the image's layers.
	Ztocs []ZtocRef
	// Prefetches are the prefetch artifacts, in the order of the image's
	// layers.
	Prefetches []PrefetchRef
	// Subject is the image manifest a v1 index is bound to; nil in v2.
	Subject *ocispec.Descriptor
	// Annotations are the index's own: AnnotationBuildToolIdentifier.
	Annotations map[string]string
}

// ZtocRef is the descriptor of a zTOC in a SOCI index, with what its
// annotations say about the layer it indexes.
type ZtocRef struct {
	// Descriptor is the zTOC blob's, as the index lists it; Encode sets
	// its media type and the three annotations below and keeps any
	// other annotation.
	Descriptor     ocispec.Descriptor
	Layer          digest.Digest // AnnotationImageLayerDigest
	LayerMediaType string        // AnnotationImageLayerMediaType
	// SpanSize is the span size the zTOC was built with
	// (AnnotationSpanSize), or 0 if the index does not say (and Encode
	// writes no span size).
	SpanSize int64
}

// PrefetchRef is the descriptor of a prefetch artifact in a SOCI index.
type PrefetchRef struct {
	Descriptor ocispec.Descriptor
	Layer      digest.Digest // AnnotationImageLayerDigest
}

// NewZtocRef returns the reference to the encoded zTOC blob, built with
// spanSize, that indexes layer.
func NewZtocRef(blob []byte, layer ocispec.Descriptor, spanSize int64) ZtocRef {
	return ZtocRef{
		Descriptor:     ocispec.Descriptor{MediaType: MediaTypeZtoc, Digest: digest.FromBytes(blob), Size: int64(len(blob))},
		Layer:          layer.Digest,
		LayerMediaType: layer.MediaType,
		SpanSize:       spanSize,
	}
}

// NewPrefetchRef returns the reference to the encoded prefetch artifact
// blob of the layer whose digest is layer.
func NewPrefetchRef(blob []byte, layer digest.Digest) PrefetchRef {
	return PrefetchRef{
		Descriptor: ocispec.Descriptor{MediaType: MediaTypePrefetch, Digest: digest.FromBytes(blob), Size: int64(len(blob))},
		Layer:      layer,
	}
}

// Encode returns m as the v2 SOCI index soci-snapshotter writes for the
// same zTOCs, prefetch artifacts and annotations: the same JSON, and so
// the same digest. Only v2 is written (ErrInvalidIndex otherwise).
func (m *IndexManifest) Encode() ([]byte, error) {
	if m.Version != IndexV2 || m.Subject != nil {
		return nil, fmt.Errorf("soci: encode index: %w: only v2 indexes, without a subject, are written", ErrInvalidIndex)
	}
	out := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{
			MediaType: MediaTypeIndexV2,
			Digest:    digest.FromBytes(emptyConfig),
			Size:      int64(len(emptyConfig)),
		},
		Annotations: m.Annotations,
	}
	for _, z := range m.Ztocs {
		d := layerDescriptor(z.Descriptor, MediaTypeZtoc, z.Layer)
		d.Annotations[AnnotationImageLayerMediaType] = z.LayerMediaType
		delete(d.Annotations, AnnotationSpanSize)
		if z.SpanSize > 0 {
			d.Annotations[AnnotationSpanSize] = strconv.FormatInt(z.SpanSize, 10)
		}
		out.Layers = append(out.Layers, d)
	}
	for _, p := range m.Prefetches {
		out.Layers = append(out.Layers, layerDescriptor(p.Descriptor, MediaTypePrefetch, p.Layer))
	}
	// Decoding what was written must succeed: check it as a reader
	// would, so that nothing is pushed that a reader refuses.
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("soci: encode index: %w", err)
	}
	if _, err := DecodeIndexManifest(b); err != nil {
		return nil, fmt.Errorf("soci: encode index: %w", err)
	}
	return b, nil
}

// layerDescriptor returns d, of mediaType, annotated with the image
// layer it is for, its other annotations kept (in a copy).
func layerDescriptor(d ocispec.Descriptor, mediaType string, layer digest.Digest) ocispec.Descriptor {
	a := make(map[string]string, len(d.Annotations)+3)
	maps.Copy(a, d.Annotations)
	a[AnnotationImageLayerDigest] = layer.String()
	d.MediaType, d.Annotations = mediaType, a
	return d
}

// DecodeIndexManifest decodes and validates an untrusted SOCI index of
// either version. It checks, before anything is fetched for them:
//
//   - the size of the index (WithMaxIndexSize) and the number of its
//     layers (WithMaxIndexBlobs), ErrIndexTooLarge;
//   - that it is an OCI image manifest of schema version 2 whose config
//     media type is MediaTypeIndexV1 (which must have a subject) or
//     MediaTypeIndexV2, ErrInvalidIndex;
//   - that each zTOC names its image layer (a well-formed digest) and the
//     layer's media type, and has a well-formed span size if any, and
//     each prefetch artifact its layer, ErrInvalidIndex;
//   - that no layer has two zTOCs or two prefetch artifacts,
//     ErrInvalidIndex;
//   - that each descriptor has a well-formed digest and a size from 1 to
//     its bound: WithMaxZtocSize for a zTOC, WithMaxPrefetchSize for a
//     prefetch artifact, ErrIndexTooLarge.
//
// Layers of any other media type are left out, as soci-snapshotter
// ignores them. Whether the index fits an image is Match's to check.
func DecodeIndexManifest(b []byte, opts ...Option) (*IndexManifest, error) {
	c := newConfig(opts)
	m, err := decodeIndexManifest(b, c)
	if err != nil {
		return nil, fmt.Errorf("soci: index: %w", err)
	}
	return m, nil
}

func decodeIndexManifest(b []byte, c config) (*IndexManifest, error) {
	if int64(len(b)) > c.maxIndexSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrIndexTooLarge, len(b), c.maxIndexSize)
	}
	var w ocispec.Manifest
	if err := decodeJSON(b, &w); err != nil {
		return nil, err
	}
	if w.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w: schema version %d", ErrInvalidIndex, w.SchemaVersion)
	}
	if w.MediaType != ocispec.MediaTypeImageManifest {
		return nil, fmt.Errorf("%w: media type %q, not an OCI image manifest", ErrInvalidIndex, untrusted.Short(w.MediaType))
	}
	if len(w.Layers) > c.maxIndexBlobs {
		return nil, fmt.Errorf("%w: %d layers, more than %d", ErrIndexTooLarge, len(w.Layers), c.maxIndexBlobs)
	}
	m := &IndexManifest{Annotations: w.Annotations}
	switch w.Config.MediaType {
	case MediaTypeIndexV1:
		m.Version = IndexV1
		if w.Subject == nil {
			return nil, fmt.Errorf("%w: v1 index without a subject", ErrInvalidIndex)
		}
		if err := checkDigest(w.Subject.Digest); err != nil {
			return nil, fmt.Errorf("subject: %w", err)
		}
		m.Subject = w.Subject
	case MediaTypeIndexV2:
		m.Version = IndexV2
	default:
		return nil, fmt.Errorf("%w: config media type %q is no SOCI index version's", ErrInvalidIndex, untrusted.Short(w.Config.MediaType))
	}
	if err := checkDigest(w.Config.Digest); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	ztocs := make(map[digest.Digest]bool)
	prefetches := make(map[digest.Digest]bool)
	for i, d := range w.Layers {
		var err error
		switch d.MediaType {
		case MediaTypeZtoc:
			var z ZtocRef
			if z, err = ztocRef(d, c); err == nil && ztocs[z.Layer] {
				err = fmt.Errorf("%w: a second zTOC of layer %s", ErrInvalidIndex, z.Layer)
			}
			ztocs[z.Layer] = true
			m.Ztocs = append(m.Ztocs, z)
		case MediaTypePrefetch:
			var p PrefetchRef
			if p, err = prefetchRef(d, c); err == nil && prefetches[p.Layer] {
				err = fmt.Errorf("%w: a second prefetch artifact of layer %s", ErrInvalidIndex, p.Layer)
			}
			prefetches[p.Layer] = true
			m.Prefetches = append(m.Prefetches, p)
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return m, nil
}

func ztocRef(d ocispec.Descriptor, c config) (ZtocRef, error) {
	z := ZtocRef{Descriptor: d, LayerMediaType: d.Annotations[AnnotationImageLayerMediaType]}
	if err := checkBlob(d, c.maxZtocSize); err != nil {
		return z, err
	}
	var err error
	if z.Layer, err = layerDigest(d); err != nil {
		return z, err
	}
	if z.LayerMediaType == "" {
		return z, fmt.Errorf("%w: zTOC %s without the %s annotation", ErrInvalidIndex, d.Digest, AnnotationImageLayerMediaType)
	}
	if s, ok := d.Annotations[AnnotationSpanSize]; ok {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n > c.maxLayerSize {
			return z, fmt.Errorf("%w: zTOC %s: span size %q", ErrInvalidIndex, d.Digest, untrusted.Short(s))
		}
		z.SpanSize = n
	}
	return z, nil
}

func prefetchRef(d ocispec.Descriptor, c config) (PrefetchRef, error) {
	p := PrefetchRef{Descriptor: d}
	if err := checkBlob(d, c.maxPrefetchSize); err != nil {
		return p, err
	}
	var err error
	p.Layer, err = layerDigest(d)
	return p, err
}

// checkBlob checks a blob's descriptor before the blob is fetched.
func checkBlob(d ocispec.Descriptor, max int64) error {
	if err := checkDigest(d.Digest); err != nil {
		return err
	}
	if d.Size <= 0 {
		return fmt.Errorf("%w: blob %s of size %d", ErrInvalidIndex, d.Digest, d.Size)
	}
	if d.Size > max {
		return fmt.Errorf("%w: blob %s of %d bytes, more than %d", ErrIndexTooLarge, d.Digest, d.Size, max)
	}
	return nil
}

func layerDigest(d ocispec.Descriptor) (digest.Digest, error) {
	s, ok := d.Annotations[AnnotationImageLayerDigest]
	if !ok {
		return "", fmt.Errorf("%w: blob %s without the %s annotation", ErrInvalidIndex, d.Digest, AnnotationImageLayerDigest)
	}
	l := digest.Digest(s)
	if err := checkDigest(l); err != nil {
		return "", fmt.Errorf("blob %s: image layer: %w", d.Digest, err)
	}
	return l, nil
}

// checkDigest checks that d is well formed, of an algorithm this program
// computes.
func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil || !d.Algorithm().Available() {
		return fmt.Errorf("%w: digest %q", ErrInvalidIndex, untrusted.Short(string(d)))
	}
	return nil
}

// decodeJSON decodes b, one JSON value and nothing after it, into v.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidIndex, untrusted.Err(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON value", ErrInvalidIndex)
	}
	return nil
}

// LayerArtifacts are what a SOCI index holds for one layer of its image.
type LayerArtifacts struct {
	// Ztoc is the layer's zTOC, or nil if the index has none for it (a
	// layer under the minimum size, or one soci does not index).
	Ztoc *ZtocRef
	// Prefetch is the layer's prefetch artifact, or nil.
	Prefetch *PrefetchRef
}

// Match returns, for each of the image layers layers, what m holds for
// it. Every zTOC and prefetch artifact of m must be for one of them, and
// a zTOC must record the layer's media type (ErrInvalidIndex otherwise):
// an index that names a layer its image lacks is not that image's.
func (m *IndexManifest) Match(layers []ocispec.Descriptor) ([]LayerArtifacts, error) {
	out := make([]LayerArtifacts, len(layers))
	at := make(map[digest.Digest][]int, len(layers))
	for i, l := range layers {
		at[l.Digest] = append(at[l.Digest], i)
	}
	for i := range m.Ztocs {
		z := &m.Ztocs[i]
		is, ok := at[z.Layer]
		if !ok {
			return nil, fmt.Errorf("soci: index: %w: zTOC %s is for layer %s, which the image does not have", ErrInvalidIndex, z.Descriptor.Digest, z.Layer)
		}
		for _, j := range is {
			if layers[j].MediaType != z.LayerMediaType {
				return nil, fmt.Errorf("soci: index: %w: zTOC %s is for a layer of media type %q, the image's layer %d is %q", ErrInvalidIndex,
					z.Descriptor.Digest, untrusted.Short(z.LayerMediaType), j, untrusted.Short(layers[j].MediaType))
			}
			out[j].Ztoc = z
		}
	}
	for i := range m.Prefetches {
		p := &m.Prefetches[i]
		is, ok := at[p.Layer]
		if !ok {
			return nil, fmt.Errorf("soci: index: %w: prefetch artifact %s is for layer %s, which the image does not have", ErrInvalidIndex, p.Descriptor.Digest, p.Layer)
		}
		for _, j := range is {
			out[j].Prefetch = p
		}
	}
	return out, nil
}

// IndexDescriptor returns the entry of a v2 SOCI index, encoded as
// index, in the image index that lists it with the image manifest it
// indexes, manifest, as soci-snapshotter writes it: an image manifest
// of artifactType MediaTypeIndexV2, of the manifest's platform, annotated
// with the manifest's digest (AnnotationImageManifestDigest).
func IndexDescriptor(index []byte, manifest ocispec.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: MediaTypeIndexV2,
		Digest:       digest.FromBytes(index),
		Size:         int64(len(index)),
		Platform:     manifest.Platform,
		Annotations:  map[string]string{AnnotationImageManifestDigest: manifest.Digest.String()},
	}
}
