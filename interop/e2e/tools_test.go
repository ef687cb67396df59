package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/lazylayer/lazylayer/internal/localregistry"
	"github.com/lazylayer/lazylayer/internal/registrytest"
	"github.com/lazylayer/lazylayer/internal/tooltest"
	"github.com/opencontainers/go-digest"
)

// startRegistry runs docker-registry on loopback until the test ends. The
// tools need the real one: podman asks for hundreds of ranges at once.
func startRegistry(t *testing.T) *localregistry.Registry {
	t.Helper()
	r, err := localregistry.Start(t.Context())
	if errors.Is(err, localregistry.ErrNotInstalled) {
		env := registrytest.RequireEnv
		if os.Getenv(env) != "1" {
			env = tooltest.RequireEnv
		}
		tooltest.Missing(t, env, localregistry.Binary, "docker-registry", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// request is one request a proxy passed on: what was asked and what came
// back.
type request struct {
	Method, Path, Range string
	Status              int
	Bytes               int64 // body bytes sent back
}

// ranges counts the byte ranges the request asked for.
func (r request) ranges() int {
	if r.Range == "" {
		return 0
	}
	return strings.Count(r.Range, ",") + 1
}

// end returns the end of the last byte range the request asked for
// (ranges "first-last" with both given, as the tools write them), or -1.
func (r request) end() int64 {
	end := int64(-1)
	for _, rng := range strings.Split(strings.TrimPrefix(r.Range, "bytes="), ",") {
		var first, last int64
		if _, err := fmt.Sscanf(rng, "%d-%d", &first, &last); err != nil {
			return -1
		}
		end = max(end, last+1)
	}
	return end
}

// proxy is a logging reverse proxy in front of a registry: the tools talk
// to it, and the test reads what they asked for.
type proxy struct {
	host string // "127.0.0.1:port", the host of image references
	mu   sync.Mutex
	log  []request
}

// startProxy starts a proxy to the registry at target until the test ends.
func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(cw, r)
		p.mu.Lock()
		p.log = append(p.log, request{r.Method, r.URL.Path, r.Header.Get("Range"), cw.status, cw.n})
		p.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	p.host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// takeBlobRequests returns the requests for blob d logged since the last
// call, and forgets every request logged.
func (p *proxy) takeBlobRequests(d digest.Digest) []request {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []request
	for _, r := range p.log {
		if strings.HasSuffix(r.Path, "/blobs/"+d.String()) {
			out = append(out, r)
		}
	}
	p.log = nil
	return out
}

// countingWriter records the status and body size of a response.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// Flush lets the reverse proxy stream.
func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
