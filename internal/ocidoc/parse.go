package ocidoc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/lazylayer/lazylayer/internal/untrusted"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Decode decodes b, which must hold one JSON value and nothing after it,
// into v (ErrInvalid).
func Decode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, untrusted.Err(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON value", ErrInvalid)
	}
	return nil
}

// header holds the fields that tell what a manifest-like document is.
type header struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        json.RawMessage `json:"config"`
	Manifests     json.RawMessage `json:"manifests"`
}

// ParseHeader tells what the manifest or index b is, and returns its
// media type: the document's own, or else the descriptor's (descType),
// or, when neither says, the OCI type its fields show (manifests: an
// index; config: a manifest). It fails when:
//
//   - b is not one JSON object (ErrInvalid);
//   - the document's media type contradicts descType (ErrDigestMismatch
//     and ErrInvalid);
//   - the media type is none the SDK reads (ErrUnsupported);
//   - the schema version is not 2 (ErrUnsupported and ErrInvalid).
func ParseHeader(b []byte, descType string) (Kind, string, error) {
	var h header
	if err := Decode(b, &h); err != nil {
		return 0, "", err
	}
	mt := h.MediaType
	switch {
	case mt == "":
		mt = descType
	case descType != "" && descType != mt:
		return 0, "", fmt.Errorf("media type %q, descriptor says %q: %w: %w",
			untrusted.Short(mt), untrusted.Short(descType), ErrDigestMismatch, ErrInvalid)
	}
	if mt == "" && h.Manifests != nil {
		mt = ocispec.MediaTypeImageIndex
	} else if mt == "" && h.Config != nil {
		mt = ocispec.MediaTypeImageManifest
	}
	k, ok := KindOf(mt)
	if !ok {
		return 0, "", fmt.Errorf("media type %q: %w", untrusted.Short(mt), ErrUnsupported)
	}
	if h.SchemaVersion != 2 {
		return 0, "", fmt.Errorf("schema version %d: %w: %w", h.SchemaVersion, ErrUnsupported, ErrInvalid)
	}
	return k, mt, nil
}

// ParseIndex decodes an image index (OCI, or a Docker manifest list) of
// at most maxEntries manifests (ErrLimit). Its header is ParseHeader's
// to check; its entries are the caller's.
func ParseIndex(b []byte, maxEntries int) (*ocispec.Index, error) {
	var idx ocispec.Index
	if err := Decode(b, &idx); err != nil {
		return nil, err
	}
	if len(idx.Manifests) > maxEntries {
		return nil, fmt.Errorf("index of %d manifests, over %d: %w", len(idx.Manifests), maxEntries, ErrLimit)
	}
	return &idx, nil
}

// ParseManifest decodes an image manifest (OCI, or Docker schema 2) of
// at most maxLayers layers (ErrLimit) whose config is of a config media
// type (ErrUnsupported). Its header is ParseHeader's to check; its
// descriptors are the caller's.
func ParseManifest(b []byte, maxLayers int) (*ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := Decode(b, &m); err != nil {
		return nil, err
	}
	if !IsConfig(m.Config.MediaType) {
		return nil, fmt.Errorf("config media type %q: %w", untrusted.Short(m.Config.MediaType), ErrUnsupported)
	}
	if len(m.Layers) > maxLayers {
		return nil, fmt.Errorf("%d layers, over %d: %w", len(m.Layers), maxLayers, ErrLimit)
	}
	return &m, nil
}

// ParseConfig decodes an image config whose DiffIDs are well formed and
// number layers (ErrInvalid).
func ParseConfig(b []byte, layers int) (*ocispec.Image, error) {
	var c ocispec.Image
	if err := Decode(b, &c); err != nil {
		return nil, err
	}
	if n := len(c.RootFS.DiffIDs); n != layers {
		return nil, fmt.Errorf("config lists %d DiffIDs for %d layers: %w", n, layers, ErrInvalid)
	}
	for _, d := range c.RootFS.DiffIDs {
		if err := CheckDigest(d); err != nil {
			return nil, fmt.Errorf("DiffID: %w", err)
		}
	}
	return &c, nil
}
