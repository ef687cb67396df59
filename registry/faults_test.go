package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/registrytest"
	"github.com/lazylayer/lazylayer/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// bearer makes s require a bearer token from its /token endpoint, given
// for the Basic credentials u:p, and counts token requests by scope.
func bearer(s *server, tokens *atomic.Int32) {
	s.setWrap(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.URL.Path == "/token" {
			if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
				http.Error(w, "bad credentials", http.StatusUnauthorized)
				return
			}
			tokens.Add(1)
			json.NewEncoder(w).Encode(map[string]string{"token": "t:" + strings.Join(r.URL.Query()["scope"], " ")})
			return
		}
		repo, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/blobs/")
		repo, _, _ = strings.Cut(repo, "/manifests/")
		scope := "repository:" + repo + ":pull"
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			scope += ",push"
		}
		if tok := r.Header.Get("Authorization"); !strings.HasPrefix(tok, "Bearer t:") || !strings.Contains(tok, scope) {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test",scope="%s"`, s.URL, scope))
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}`, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// One token per repository and scope: a push, then a pull of manifests
// and blobs, costs two tokens (push, which covers pull, is asked first by
// the upload); a second Repository of the same repository asks none.
func TestBearerOncePerRepository(t *testing.T) {
	s := newServer(t)
	var tokens atomic.Int32
	bearer(s, &tokens)
	c := newClient(t, registry.WithKeychain(staticKeychain{&authn.Basic{Username: "u", Password: "p"}}))
	im := newTestImage(100 << 10)
	im.push(t, repository(t, c, s.Host+"/a/b:v1"))
	pushTokens := tokens.Load()
	t.Logf("%d token requests to push", pushTokens)
	testPull(t, repository(t, c, s.Host+"/a/b:v1"), im)
	if got := tokens.Load(); got != pushTokens || pushTokens > 2 {
		t.Errorf("%d token requests to push, %d to pull too; want at most 2, and none more to pull", pushTokens, got)
	}
	// Another repository needs its own token; without credentials, none.
	testPull(t, repository(t, c, s.Host+"/a/b:v1"), im)
	r := repository(t, newClient(t), s.Host+"/a/b:v1")
	if _, err := r.Resolve(context.Background()); !errors.Is(err, registry.ErrUnauthorized) {
		t.Errorf("Resolve without credentials: %v, want ErrUnauthorized", err)
	}
}

// Basic auth against the real registry, through the keychain.
func TestBasicAuth(t *testing.T) {
	reg := registrytest.Start(t, registrytest.WithBasicAuth("u", "p"))
	c := newClient(t, registry.WithKeychain(staticKeychain{&authn.Basic{Username: "u", Password: "p"}}))
	im := newTestImage(10 << 10)
	r := repository(t, c, reg.Host+"/basic/app:v1")
	im.push(t, r)
	testPull(t, r, im)
	wrong := newClient(t, registry.WithKeychain(staticKeychain{&authn.Basic{Username: "u", Password: "wrong"}}))
	if _, err := repository(t, wrong, reg.Host+"/basic/app:v1").Resolve(context.Background()); !errors.Is(err, registry.ErrUnauthorized) {
		t.Errorf("Resolve with a wrong password: %v, want ErrUnauthorized", err)
	}
}

// A 429 is retried after its Retry-After; a registry that keeps
// answering 429 fails once the context ends, not after its Retry-After.
func TestTooManyRequests(t *testing.T) {
	s := newServer(t)
	c := newClient(t)
	r := repository(t, c, s.Host+"/a/b:v1")
	im := newTestImage(1 << 10)
	im.push(t, r)
	var n atomic.Int32
	s.setWrap(func(w http.ResponseWriter, req *http.Request, next http.Handler) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, req)
	})
	if _, err := r.Resolve(context.Background()); err != nil {
		t.Fatalf("Resolve after one 429: %v", err)
	}
	s.setWrap(func(w http.ResponseWriter, req *http.Request, next http.Handler) {
		w.Header().Set("Retry-After", "3600")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := r.Resolve(ctx)
	var status *fetcher.StatusError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &status) || status.Code != http.StatusTooManyRequests {
		t.Fatalf("Resolve against endless 429s: %v, want the deadline and the 429", err)
	}
}

// A 5xx in the middle of a chunked push fails the push with the
// registry's status; nothing is stored under the digest, and pushing
// again succeeds.
func TestPushInterrupted(t *testing.T) {
	s := newServer(t)
	c := newClient(t, registry.WithChunkSize(16<<10))
	r := repository(t, c, s.Host+"/a/b:v1")
	layer := randomBytes(100<<10, 9)
	desc := blobDesc(ocispec.MediaTypeImageLayer, layer)
	var patches atomic.Int32
	s.setWrap(func(w http.ResponseWriter, req *http.Request, next http.Handler) {
		if req.Method == http.MethodPatch && patches.Add(1) == 3 {
			io.Copy(io.Discard, req.Body)
			http.Error(w, `{"errors":[{"code":"UNKNOWN","message":"disk full"}]}`, http.StatusInternalServerError)
			return
		}
		next.ServeHTTP(w, req)
	})
	ctx := context.Background()
	err := r.PushBlob(ctx, desc, bytes.NewReader(layer))
	var status *fetcher.StatusError
	if !errors.As(err, &status) || status.Code != http.StatusInternalServerError || status.RegistryMessage != "disk full" {
		t.Fatalf("PushBlob through a 500: %v, want the registry's 500", err)
	}
	if has, _ := r.Has(ctx, desc); has {
		t.Fatal("a blob whose push failed is present")
	}
	if err := r.PushBlob(ctx, desc, bytes.NewReader(layer)); err != nil {
		t.Fatalf("PushBlob again: %v", err)
	}
	f, _ := r.Blob(ctx, desc)
	if got := readBlob(t, f); !bytes.Equal(got, layer) {
		t.Fatal("pushed again, the blob reads back wrong")
	}
}

// Content that is not what its descriptor says is not pushed: too short,
// too long, or other bytes, monolithic and chunked.
func TestPushLyingContent(t *testing.T) {
	s := newServer(t)
	c := newClient(t, registry.WithChunkSize(16<<10))
	r := repository(t, c, s.Host+"/a/b:v1")
	ctx := context.Background()
	for _, size := range []int{1 << 10, 100 << 10} {
		data := randomBytes(size, uint64(size))
		desc := blobDesc(ocispec.MediaTypeImageLayer, data)
		other := append([]byte(nil), data...)
		other[size/2] ^= 1
		for name, rd := range map[string]io.Reader{
			"short": bytes.NewReader(data[:size-1]),
			"long":  io.MultiReader(bytes.NewReader(data), strings.NewReader("x")),
			"other": bytes.NewReader(other),
		} {
			if err := r.PushBlob(ctx, desc, rd); !errors.Is(err, registry.ErrDigestMismatch) {
				t.Errorf("%d bytes, %s: PushBlob: %v, want ErrDigestMismatch", size, name, err)
			}
			if has, _ := r.Has(ctx, desc); has {
				t.Fatalf("%d bytes, %s: the blob is present", size, name)
			}
		}
	}
	m := []byte(`{"schemaVersion":2}`)
	desc := blobDesc(ocispec.MediaTypeImageManifest, m)
	desc.Size++
	if err := r.PushManifest(ctx, desc, m); !errors.Is(err, registry.ErrDigestMismatch) {
		t.Errorf("PushManifest with a wrong size: %v", err)
	}
}

// A registry that serves other bytes than the digest asked for, or a
// manifest over the bound, is caught; the bound holds whatever the
// Content-Length says.
func TestPullLyingRegistry(t *testing.T) {
	s := newServer(t)
	c := newClient(t)
	r := repository(t, c, s.Host+"/a/b:v1")
	im := newTestImage(1 << 10)
	im.push(t, r)
	ctx := context.Background()
	var served atomic.Int64
	for _, tt := range []struct {
		name  string
		serve func(w http.ResponseWriter)
		want  error
	}{
		{"other bytes", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Write(bytes.Replace(im.manifest, []byte(`"schemaVersion":2`), []byte(`"schemaVersion": 2`), 1))
		}, registry.ErrDigestMismatch},
		{"5 MiB with Content-Length", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Header().Set("Content-Length", fmt.Sprint(5<<20))
			n, _ := w.Write(make([]byte, 5<<20))
			served.Add(int64(n))
		}, registry.ErrTooLarge},
		{"endless without Content-Length", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			for i := 0; i < 100; i++ {
				if _, err := w.Write(make([]byte, 1<<20)); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}, registry.ErrTooLarge},
		{"schema 1", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws")
			w.Write([]byte(`{"schemaVersion":1}`))
		}, registry.ErrUnsupportedMediaType},
		{"a Docker-Content-Digest that lies", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
			w.Header().Set("Docker-Content-Digest", zeros)
			w.Write(im.index)
		}, registry.ErrDigestMismatch},
	} {
		s.setWrap(func(w http.ResponseWriter, req *http.Request, next http.Handler) {
			if strings.Contains(req.URL.Path, "/manifests/") {
				tt.serve(w)
				return
			}
			next.ServeHTTP(w, req)
		})
		var err error
		if tt.name == "a Docker-Content-Digest that lies" {
			_, err = r.Resolve(ctx)
		} else {
			_, err = r.Manifest(ctx, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: im.manifestDesc.Digest})
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	// A blob whose size is not its descriptor's fails the fetch.
	s.setWrap(nil)
	lying := im.layerDesc
	lying.Size++
	f, _ := r.Blob(ctx, lying)
	err := f.Fetch(ctx, []fetcher.Range{{Offset: 0, Length: lying.Size}}, func(fetcher.Range, []byte) error { return nil })
	if err == nil {
		t.Error("fetching a blob one byte shorter than its descriptor says: no error")
	}
}
