package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// anonymous is a keychain with no credentials, so that tests never read
// the machine's docker config.
var anonymous = staticKeychain{authn.Anonymous}

type staticKeychain struct{ authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return k.Authenticator, nil
}

func newClient(t *testing.T, opts ...registry.Option) *registry.Client {
	t.Helper()
	c, err := registry.New(append([]registry.Option{registry.WithKeychain(anonymous), registry.WithRetry(3, 1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func repository(t *testing.T, c *registry.Client, ref string) *registry.Repository {
	t.Helper()
	r, err := c.Repository(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func blobDesc(mt string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(data), Size: int64(len(data))}
}

// testImage is a one-layer image: config, layer, manifest and an index.
type testImage struct {
	config, layer, manifest, index []byte
	configDesc, layerDesc          ocispec.Descriptor
	manifestDesc, indexDesc        ocispec.Descriptor
}

func newTestImage(layerSize int) *testImage {
	im := &testImage{config: []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`),
		layer: randomBytes(layerSize, uint64(layerSize))}
	im.configDesc = blobDesc(ocispec.MediaTypeImageConfig, im.config)
	im.layerDesc = blobDesc(ocispec.MediaTypeImageLayerGzip, im.layer)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: im.configDesc, Layers: []ocispec.Descriptor{im.layerDesc}}
	m.SchemaVersion = 2
	im.manifest, _ = json.Marshal(m)
	im.manifestDesc = blobDesc(ocispec.MediaTypeImageManifest, im.manifest)
	md := im.manifestDesc
	md.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}}
	idx.SchemaVersion = 2
	im.index, _ = json.Marshal(idx)
	im.indexDesc = blobDesc(ocispec.MediaTypeImageIndex, im.index)
	return im
}

// push pushes im to r, children first, and tags the index.
func (im *testImage) push(t *testing.T, r *registry.Repository) {
	t.Helper()
	ctx := context.Background()
	for _, b := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{im.configDesc, im.config}, {im.layerDesc, im.layer}} {
		if err := r.PushBlob(ctx, b.desc, bytes.NewReader(b.data)); err != nil {
			t.Fatalf("PushBlob %s: %v", b.desc.Digest, err)
		}
	}
	if err := r.PushManifest(ctx, im.manifestDesc, im.manifest); err != nil {
		t.Fatal(err)
	}
	if err := r.PushManifest(ctx, im.indexDesc, im.index); err != nil {
		t.Fatal(err)
	}
	if err := r.Tag(ctx, im.indexDesc); err != nil {
		t.Fatal(err)
	}
}

// readBlob reads the whole blob through f.
func readBlob(t *testing.T, f fetcher.Fetcher) []byte {
	t.Helper()
	ctx := context.Background()
	size, err := f.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, size)
	err = f.Fetch(ctx, []fetcher.Range{{Offset: 0, Length: size}}, func(r fetcher.Range, data []byte) error {
		copy(out[r.Offset:], data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// logged is one request a test server received.
type logged struct {
	Method, Path, Query, UserAgent, Authorization string
}

// server is an in-process registry whose requests are logged, and which
// a test can make misbehave with a middleware.
type server struct {
	*httptest.Server
	Host string

	mu      sync.Mutex
	log     []logged
	handler http.Handler
	wrap    func(w http.ResponseWriter, r *http.Request, next http.Handler)
}

func newServer(t *testing.T) *server {
	s := &server{handler: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true))}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.log = append(s.log, logged{r.Method, r.URL.Path, r.URL.RawQuery, r.UserAgent(), r.Header.Get("Authorization")})
		wrap := s.wrap
		s.mu.Unlock()
		if wrap != nil {
			wrap(w, r, s.handler)
			return
		}
		s.handler.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	s.Host = strings.TrimPrefix(s.URL, "http://")
	return s
}

func (s *server) setWrap(fn func(w http.ResponseWriter, r *http.Request, next http.Handler)) {
	s.mu.Lock()
	s.wrap = fn
	s.mu.Unlock()
}

// requests returns the requests logged since the last call.
func (s *server) requests() []logged {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.log
	s.log = nil
	return out
}

func jsonReader(s string) io.Reader { return strings.NewReader(s) }
