package ocidoc

import (
	"errors"
	"testing"
)

// FuzzParse (seeds in testdata/fuzz: manifests, indexes and configs of
// OCI and Docker, and documents that break each rule) feeds one
// untrusted document and the media type of its descriptor to every
// parser: they never panic, every error matches a sentinel and is
// short, and what ParseHeader accepts is of the kind its media type says
// and agrees with the descriptor.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, descType string) {
		check := func(what string, err error) {
			t.Helper()
			if err == nil {
				return
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrLimit) {
				t.Fatalf("%s: error %v matches no sentinel", what, err)
			}
			if len(err.Error()) > 1024 {
				t.Fatalf("%s: error of %d bytes", what, len(err.Error()))
			}
		}
		k, mt, err := ParseHeader(b, descType)
		check("ParseHeader", err)
		if err == nil {
			if want, ok := KindOf(mt); !ok || want != k {
				t.Fatalf("ParseHeader = %v, %q", k, mt)
			}
			if descType != "" && mt != descType {
				t.Fatalf("media type %q, descriptor says %q", mt, descType)
			}
			switch k {
			case KindIndex:
				idx, err := ParseIndex(b, 16)
				check("ParseIndex", err)
				if err == nil && len(idx.Manifests) > 16 {
					t.Fatalf("index of %d entries", len(idx.Manifests))
				}
			case KindManifest:
				m, err := ParseManifest(b, 16)
				check("ParseManifest", err)
				if err == nil && (len(m.Layers) > 16 || !IsConfig(m.Config.MediaType)) {
					t.Fatalf("manifest of %d layers, config %q", len(m.Layers), m.Config.MediaType)
				}
			}
		}
		for layers := range 3 {
			c, err := ParseConfig(b, layers)
			check("ParseConfig", err)
			if err == nil {
				if len(c.RootFS.DiffIDs) != layers {
					t.Fatalf("config of %d DiffIDs for %d layers", len(c.RootFS.DiffIDs), layers)
				}
				for _, d := range c.RootFS.DiffIDs {
					if CheckDigest(d) != nil {
						t.Fatalf("DiffID %q", d)
					}
				}
			}
		}
	})
}
