package ocidoc_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/lazylayer/lazylayer/convert"
	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/image/archive"
	"github.com/lazylayer/lazylayer/image/layout"
	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestSentinelsAreShared: each failure has one sentinel across the SDK,
// whatever name a package exports it under, so that a caller of one
// package can branch on the errors of another with errors.Is.
func TestSentinelsAreShared(t *testing.T) {
	for shared, names := range map[error]map[string]error{
		ocidoc.ErrDigestMismatch: {
			"image.ErrDigestMismatch":    image.ErrDigestMismatch,
			"convert.ErrMismatch":        convert.ErrMismatch,
			"registry.ErrDigestMismatch": registry.ErrDigestMismatch,
			"layout.ErrDigestMismatch":   layout.ErrDigestMismatch,
			"archive.ErrDigestMismatch":  archive.ErrDigestMismatch,
		},
		ocidoc.ErrTooLarge: {
			"image.ErrTooLarge":    image.ErrTooLarge,
			"convert.ErrTooLarge":  convert.ErrTooLarge,
			"registry.ErrTooLarge": registry.ErrTooLarge,
			"layout.ErrTooLarge":   layout.ErrTooLarge,
			"archive.ErrTooLarge":  archive.ErrTooLarge,
		},
		ocidoc.ErrLimit: {
			"image.ErrLimit":   image.ErrLimit,
			"convert.ErrLimit": convert.ErrLimit,
		},
		ocidoc.ErrInvalid: {
			"image.ErrInvalid":    image.ErrInvalid,
			"convert.ErrInvalid":  convert.ErrInvalid,
			"registry.ErrInvalid": registry.ErrInvalid,
			"layout.ErrInvalid":   layout.ErrInvalid,
			"archive.ErrInvalid":  archive.ErrInvalid,
		},
		ocidoc.ErrUnsupported: {
			"image.ErrUnsupportedMediaType":    image.ErrUnsupportedMediaType,
			"convert.ErrUnsupported":           convert.ErrUnsupported,
			"registry.ErrUnsupportedMediaType": registry.ErrUnsupportedMediaType,
		},
		ocidoc.ErrNotFound: {
			"layout.ErrNotFound":  layout.ErrNotFound,
			"archive.ErrNotFound": archive.ErrNotFound,
		},
		ocidoc.ErrAmbiguous: {
			"layout.ErrAmbiguous":  layout.ErrAmbiguous,
			"archive.ErrAmbiguous": archive.ErrAmbiguous,
		},
		ocidoc.ErrNoPlatform: {
			"image.ErrNoPlatform":   image.ErrNoPlatform,
			"convert.ErrNoPlatform": convert.ErrNoPlatform,
		},
	} {
		for name, err := range names {
			if err != shared {
				t.Errorf("%s is not the shared %q", name, shared)
			}
		}
	}
	if !errors.Is(image.ErrTooLarge, image.ErrLimit) || !errors.Is(registry.ErrTooLarge, convert.ErrLimit) {
		t.Error("a size bound does not match ErrLimit")
	}
	if !errors.Is(&image.PlatformError{}, convert.ErrNoPlatform) {
		t.Error("image.PlatformError does not match convert.ErrNoPlatform")
	}
}

// TestSentinelsMatchAcrossPackages: an error one package produces
// matches the sentinels every other package exports for it.
func TestSentinelsMatchAcrossPackages(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l, err := layout.Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	m := []byte(`{"schemaVersion":2}`)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))}
	if err := l.PushManifest(ctx, desc, m); err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(dir, "blobs", "sha256", desc.Digest.Encoded())
	if err := os.WriteFile(blob, []byte(`{"schemaVersion":3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	matches := func(err error, targets map[string]error) {
		t.Helper()
		for name, target := range targets {
			if !errors.Is(err, target) {
				t.Errorf("layout's %v does not match %s", err, name)
			}
		}
	}
	_, err = l.Manifest(ctx, desc)
	matches(err, map[string]error{
		"image.ErrDigestMismatch": image.ErrDigestMismatch, "convert.ErrMismatch": convert.ErrMismatch,
		"registry.ErrDigestMismatch": registry.ErrDigestMismatch, "archive.ErrDigestMismatch": archive.ErrDigestMismatch,
	})
	desc.Size = layout.DefaultMaxManifestSize + 1
	_, err = l.Manifest(ctx, desc)
	matches(err, map[string]error{
		"image.ErrTooLarge": image.ErrTooLarge, "image.ErrLimit": image.ErrLimit,
		"convert.ErrTooLarge": convert.ErrTooLarge, "registry.ErrTooLarge": registry.ErrTooLarge,
	})
}
