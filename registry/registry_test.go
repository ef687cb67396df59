package registry_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/internal/registrytest"
	"github.com/lazylayer/lazylayer/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	_ image.Source    = (*registry.Repository)(nil)
	_ image.Target    = (*registry.Repository)(nil)
	_ image.Referrers = (*registry.Repository)(nil)
)

const zeros = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

func TestReferences(t *testing.T) {
	c := newClient(t)
	for _, tt := range []struct{ ref, name, url string }{
		{"ubuntu", "index.docker.io/library/ubuntu:latest", "https://registry-1.docker.io/v2/library/ubuntu/manifests/latest"},
		{"ubuntu:24.04", "index.docker.io/library/ubuntu:24.04", "https://registry-1.docker.io/v2/library/ubuntu/manifests/24.04"},
		{"docker.io/org/app", "index.docker.io/org/app:latest", "https://registry-1.docker.io/v2/org/app/manifests/latest"},
		{"localhost:5000/app@" + zeros, "localhost:5000/app@" + zeros, "http://localhost:5000/v2/app/manifests/" + zeros},
		{"[::1]:5000/app:tag", "[::1]:5000/app:tag", "http://[::1]:5000/v2/app/manifests/tag"},
		{"ghcr.io/org/app:tag@" + zeros, "ghcr.io/org/app@" + zeros, "https://ghcr.io/v2/org/app/manifests/" + zeros},
		{"10.0.0.1:5000/a/b/c:v1", "10.0.0.1:5000/a/b/c:v1", "https://10.0.0.1:5000/v2/a/b/c/manifests/v1"},
	} {
		r, err := c.Repository(tt.ref)
		if err != nil {
			t.Errorf("Repository(%q): %v", tt.ref, err)
			continue
		}
		if r.Name() != tt.name {
			t.Errorf("Repository(%q).Name() = %q, want %q", tt.ref, r.Name(), tt.name)
		}
		if got := registry.ResolveURL(r); got != tt.url {
			t.Errorf("Repository(%q) resolves at %q, want %q", tt.ref, got, tt.url)
		}
	}
	for _, bad := range []string{"", "UPPER/x", "a//b", "x@sha256:abc", "x:" + strings.Repeat("t", 200), strings.Repeat("a", 5000)} {
		if _, err := c.Repository(bad); err == nil {
			t.Errorf("Repository(%q): no error", bad)
		}
	}
}

// The round trip of an image through both registries Start can run:
// push, then resolve, read manifests and blobs back.
func TestPushPull(t *testing.T) {
	for _, kind := range []string{"start", registrytest.KindInProcess} {
		t.Run(kind, func(t *testing.T) {
			var reg *registrytest.Registry
			if kind == "start" {
				reg = registrytest.Start(t)
			} else {
				reg = registrytest.StartInProcess(t)
			}
			c := newClient(t, registry.WithChunkSize(64<<10))
			r := repository(t, c, reg.Host+"/test/app:v1")
			im := newTestImage(200 << 10) // chunked: four PATCHes
			im.push(t, r)
			testPull(t, r, im)
			// A second push of the same image uploads nothing.
			im.push(t, r)
		})
	}
}

func testPull(t *testing.T, r *registry.Repository, im *testImage) {
	t.Helper()
	ctx := context.Background()
	desc, err := r.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != im.indexDesc.Digest || desc.Size != im.indexDesc.Size || desc.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("Resolve = %+v, want %+v", desc, im.indexDesc)
	}
	for _, want := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{desc, im.index}, {im.manifestDesc, im.manifest}} {
		got, err := r.Manifest(ctx, want.desc)
		if err != nil || !bytes.Equal(got, want.data) {
			t.Fatalf("Manifest(%s) = %q, %v", want.desc.Digest, got, err)
		}
	}
	for _, want := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{im.configDesc, im.config}, {im.layerDesc, im.layer}} {
		f, err := r.Blob(ctx, want.desc)
		if err != nil {
			t.Fatal(err)
		}
		if got := readBlob(t, f); !bytes.Equal(got, want.data) {
			t.Fatalf("blob %s: wrong bytes", want.desc.Digest)
		}
		if has, err := r.Has(ctx, want.desc); !has || err != nil {
			t.Fatalf("Has(%s) = %v, %v", want.desc.Digest, has, err)
		}
	}
	if has, err := r.Has(ctx, im.manifestDesc); !has || err != nil {
		t.Fatalf("Has(manifest) = %v, %v", has, err)
	}
	if has, err := r.Has(ctx, blobDesc("", []byte("absent"))); has || err != nil {
		t.Fatalf("Has(absent) = %v, %v", has, err)
	}
}

// Resolve and the Manifest call that follows cost one request; a second
// push of the same blob only asks whether it is there; every request
// names lazylayer in its User-Agent.
func TestRoundTrips(t *testing.T) {
	s := newServer(t)
	c := newClient(t, registry.WithUserAgent("tool/1"))
	r := repository(t, c, s.Host+"/a/b:latest")
	im := newTestImage(1 << 10)
	im.push(t, r)
	for _, l := range s.requests() {
		if !strings.HasPrefix(l.UserAgent, "tool/1 lazylayer/") {
			t.Errorf("%s %s: User-Agent %q", l.Method, l.Path, l.UserAgent)
		}
	}
	ctx := context.Background()
	desc, err := r.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Manifest(ctx, desc); err != nil {
		t.Fatal(err)
	}
	if got := s.requests(); len(got) != 1 || got[0].Method != http.MethodGet {
		t.Errorf("Resolve and Manifest sent %v, want one GET", got)
	}
	if err := r.PushBlob(ctx, im.layerDesc, bytes.NewReader(im.layer)); err != nil {
		t.Fatal(err)
	}
	if got := s.requests(); len(got) != 1 || got[0].Method != http.MethodHead {
		t.Errorf("pushing a blob present sent %v, want one HEAD", got)
	}
}

func TestUnknown(t *testing.T) {
	s := newServer(t)
	r := repository(t, newClient(t), s.Host+"/a/b:nope")
	ctx := context.Background()
	if _, err := r.Resolve(ctx); !errors.Is(err, registry.ErrManifestUnknown) {
		t.Errorf("Resolve of a missing tag: %v, want ErrManifestUnknown", err)
	}
	if _, err := r.Manifest(ctx, ocispec.Descriptor{Digest: zeros}); !errors.Is(err, registry.ErrManifestUnknown) {
		t.Errorf("Manifest of a missing digest: %v, want ErrManifestUnknown", err)
	}
	f, err := r.Blob(ctx, ocispec.Descriptor{Digest: zeros, Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Size(ctx); err != nil {
		t.Fatal(err) // known from the descriptor
	}
	f, _ = r.Blob(ctx, ocispec.Descriptor{Digest: zeros})
	if _, err := f.Size(ctx); !errors.Is(err, registry.ErrBlobUnknown) {
		t.Errorf("Size of a missing blob: %v, want ErrBlobUnknown", err)
	}
	if _, err := r.Manifest(ctx, ocispec.Descriptor{MediaType: "application/vnd.docker.distribution.manifest.v1+prettyjws", Digest: zeros}); !errors.Is(err, registry.ErrUnsupportedMediaType) {
		t.Errorf("Manifest of schema 1: %v, want ErrUnsupportedMediaType", err)
	}
	if _, err := r.Manifest(ctx, ocispec.Descriptor{Digest: zeros, Size: 5 << 20}); !errors.Is(err, registry.ErrTooLarge) {
		t.Errorf("Manifest of 5 MiB: %v, want ErrTooLarge", err)
	}
	if got := s.requests(); len(got) != 4 {
		t.Errorf("%d requests, want 4: refused descriptors cost none", len(got))
	}
}
