package ocilayout

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestBlobPath(t *testing.T) {
	const hex = "1111111111111111111111111111111111111111111111111111111111111111"
	if got, err := BlobPath("sha256:" + hex); err != nil || got != "blobs/sha256/"+hex {
		t.Errorf("BlobPath = %q, %v", got, err)
	}
	for _, d := range []string{"", "sha256:", "sha256:../x", "sha256:" + hex[1:], "SHA256:" + hex, "md5:d41d8cd98f00b204e9800998ecf8427e", "../../" + hex} {
		if _, err := BlobPath(digestOf(d)); !errors.Is(err, ocidoc.ErrInvalid) {
			t.Errorf("BlobPath(%q) = %v, want ErrInvalid", d, err)
		}
	}
}

// FuzzParseIndex (seeds in testdata/fuzz: index.json files as skopeo and
// podman write them): an index.json that parses names every manifest by a
// digest whose blob path stays under blobs/, and Select answers without
// panicking.
func FuzzParseIndex(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, ref string) {
		idx, err := ParseIndex(data)
		if err != nil {
			if !errors.Is(err, ocidoc.ErrInvalid) {
				t.Fatalf("ParseIndex error %v does not wrap ErrInvalid", err)
			}
			if len(err.Error()) > 1024 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		for _, m := range idx.Manifests {
			p, err := BlobPath(m.Digest)
			if err != nil || !filepath.IsLocal(p) || !strings.HasPrefix(p, ocispec.ImageBlobsDir+"/") || strings.Count(p, "/") != 2 {
				t.Fatalf("manifest %q: blob path %q, %v", m.Digest, p, err)
			}
		}
		if d, err := Select(idx.Manifests, ref); err == nil && ref != "" && RefName(d) != ref {
			t.Fatalf("Select(%q) = an entry named %q", ref, RefName(d))
		}
		if _, err := json.Marshal(idx); err != nil {
			t.Fatal(err)
		}
	})
}

func digestOf(s string) digest.Digest { return digest.Digest(s) }
