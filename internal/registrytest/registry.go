package registrytest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

// Binary is where Debian installs the distribution registry.
const Binary = "/usr/bin/docker-registry"

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

	username, password string
}

// Option configures Start.
type Option func(*config)

type config struct{ username, password string }

// WithBasicAuth makes the registry require HTTP Basic auth as username
// with password (htpasswd for docker-registry).
func WithBasicAuth(username, password string) Option {
	return func(c *config) { c.username, c.password = username, password }
}

// Start runs Binary with its storage in a temporary directory, waits until
// /v2/ answers and stops it when the test ends. Without the binary it falls
// back to an in-process registry, unless RequireEnv is set. It logs which
// one it uses.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	if _, err := os.Stat(Binary); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("registrytest: %s=1 but %s is unavailable: %v", RequireEnv, Binary, err)
		}
		r := startInProcess(t, c)
		t.Logf("registrytest: %s missing, using the %s registry at %s", Binary, r.Kind, r.URL)
		return r
	}
	var err error
	for try := 0; try < 3; try++ { // the free port may be taken before the registry binds it
		var r *Registry
		if r, err = startBinary(t, c); err == nil {
			t.Logf("registrytest: using %s at %s", r.Kind, r.URL)
			return r
		}
	}
	t.Fatalf("registrytest: %v", err)
	return nil
}

func startBinary(t testing.TB, c config) (*Registry, error) {
	dir := t.TempDir()
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
  secret: registrytest
`, filepath.Join(dir, "storage"), addr)
	if c.username != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(c.password), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(c.username+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: registrytest\n    path: %s\n", htpasswd)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}

	var out syncBuffer
	cmd := exec.Command(Binary, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", Binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}

	r := &Registry{URL: "http://" + addr, Host: addr, Kind: KindDistribution, username: c.username, password: c.password}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(r.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				break
			}
		}
		select {
		case err := <-exited:
			exited <- err
			stop()
			return nil, fmt.Errorf("%s exited (%v): %s", Binary, err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("%s did not answer /v2/ within 30s: %s", Binary, out.String())
		}
	}
	t.Cleanup(stop)
	return r, nil
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
	return &Registry{URL: srv.URL, Host: host, Kind: KindInProcess, username: c.username, password: c.password}
}

// BlobURL returns the distribution API URL of a blob in repo.
func (r *Registry) BlobURL(repo string, d digest.Digest) string {
	return r.URL + "/v2/" + repo + "/blobs/" + d.String()
}

// PushBlob uploads data to repo with a monolithic upload (POST, then PUT
// with the digest) and returns its digest.
func (r *Registry) PushBlob(t testing.TB, repo string, data []byte) digest.Digest {
	t.Helper()
	d, err := r.pushBlob(context.Background(), repo, data)
	if err != nil {
		t.Fatalf("registrytest: push blob to %s: %v", repo, err)
	}
	return d
}

func (r *Registry) pushBlob(ctx context.Context, repo string, data []byte) (digest.Digest, error) {
	d := digest.FromBytes(data)
	resp, err := r.do(ctx, http.MethodPost, r.URL+"/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("start upload: status %s", resp.Status)
	}
	loc, err := resp.Location()
	if err != nil {
		return "", fmt.Errorf("start upload: %w", err)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	resp, err = r.do(ctx, http.MethodPut, loc.String(), data)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("finish upload: status %s: %s", resp.Status, body)
	}
	return d, nil
}

func (r *Registry) do(ctx context.Context, method, url string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if r.username != "" {
		req.SetBasicAuth(r.username, r.password)
	}
	return http.DefaultClient.Do(req)
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// syncBuffer collects a child process's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil // keep the start; that is where the reason is
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
