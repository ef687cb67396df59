package registrytest

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/lazylayer/lazylayer/internal/localregistry"
	"github.com/opencontainers/go-digest"
)

// Binary is where Debian installs the distribution registry.
const Binary = localregistry.Binary

// RequireEnv names the environment variable that, set to 1, makes a
// missing Binary a test failure instead of a fallback (CI sets it).
const RequireEnv = "LAZYLAYER_REQUIRE_REGISTRY"

// Kinds of registry Start can run.
const (
	KindDistribution = "docker-registry" // the real distribution 2.8 binary
	KindInProcess    = "in-process"      // go-containerregistry's pkg/registry
)

// Registry is a running registry for one test.
type Registry struct {
	URL  string // "http://127.0.0.1:port"
	Host string // "127.0.0.1:port"
	Kind string // KindDistribution or KindInProcess

	pusher *localregistry.Client
}

// Option configures Start.
type Option func(*config)

type config struct{ username, password string }

// WithBasicAuth makes the registry require HTTP Basic auth as username
// with password (htpasswd for docker-registry).
func WithBasicAuth(username, password string) Option {
	return func(c *config) { c.username, c.password = username, password }
}

// Start runs Binary through package localregistry and stops it when the
// test ends. Without the binary it falls back to an in-process registry,
// unless RequireEnv is set. It logs which one it uses.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	var lopts []localregistry.Option
	if c.username != "" {
		lopts = append(lopts, localregistry.WithBasicAuth(c.username, c.password))
	}
	lr, err := localregistry.Start(t.Context(), lopts...)
	if errors.Is(err, localregistry.ErrNotInstalled) {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("registrytest: %s=1 but %v", RequireEnv, err)
		}
		r := startInProcess(t, c)
		t.Logf("registrytest: %s missing, using the %s registry at %s", Binary, r.Kind, r.URL)
		return r
	}
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	t.Cleanup(func() {
		if err := lr.Close(); err != nil {
			t.Errorf("registrytest: %v", err)
		}
	})
	t.Logf("registrytest: using %s at %s", KindDistribution, lr.URL())
	return &Registry{URL: lr.URL(), Host: lr.Host(), Kind: KindDistribution, pusher: pusher(lr.URL(), c)}
}

func pusher(url string, c config) *localregistry.Client {
	return &localregistry.Client{URL: url, Username: c.username, Password: c.password}
}

// StartInProcess runs go-containerregistry's in-process registry, the
// fallback of Start, for tests that want to cover it explicitly. It
// serves single ranges only: a multi-range request gets its first range.
func StartInProcess(t testing.TB, opts ...Option) *Registry {
	var c config
	for _, o := range opts {
		o(&c)
	}
	return startInProcess(t, c)
}

func startInProcess(t testing.TB, c config) *Registry {
	var h http.Handler = registry.New(registry.Logger(discardLogger()))
	if c.username != "" {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if u, p, ok := req.BasicAuth(); !ok || u != c.username || p != c.password {
				w.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			inner.ServeHTTP(w, req)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	return &Registry{URL: srv.URL, Host: host, Kind: KindInProcess, pusher: pusher(srv.URL, c)}
}

// BlobURL returns the distribution API URL of a blob in repo.
func (r *Registry) BlobURL(repo string, d digest.Digest) string {
	return localregistry.BlobURL(r.URL, repo, d)
}

// PushBlob uploads data to repo with a monolithic upload (POST, then PUT
// with the digest) and returns its digest.
func (r *Registry) PushBlob(t testing.TB, repo string, data []byte) digest.Digest {
	t.Helper()
	d, err := r.pushBlob(context.Background(), repo, data)
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	return d
}

func (r *Registry) pushBlob(ctx context.Context, repo string, data []byte) (digest.Digest, error) {
	return r.pusher.Push(ctx, repo, data)
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
