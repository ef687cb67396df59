package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/internal/localregistry"
	"github.com/lazylayer/lazylayer/internal/registrytest"
	"github.com/opencontainers/go-digest"
)

// requireToolsEnv names the environment variable that, set to 1, makes a
// missing tool a test failure instead of a skip (.ci/run sets it).
const requireToolsEnv = "LAZYLAYER_REQUIRE_TOOLS"

// commandTimeout bounds each run of a tool.
const commandTimeout = 3 * time.Minute

// missing skips t for want of what, which Debian's package pkg installs,
// or fails it when env requires it.
func missing(t *testing.T, env, what, pkg string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s is missing (apt-get install %s): %v", what, pkg, err)
	if os.Getenv(env) == "1" {
		t.Fatalf("%s=1 but %s", env, msg)
	}
	t.Skip(msg)
}

// lookTool returns the path of the program name, which Debian's package
// pkg installs.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missing(t, requireToolsEnv, name, pkg, err)
	}
	return path
}

// startRegistry runs docker-registry on loopback until the test ends. The
// tools need the real one: podman asks for hundreds of ranges at once.
func startRegistry(t *testing.T) *localregistry.Registry {
	t.Helper()
	r, err := localregistry.Start(t.Context())
	if errors.Is(err, localregistry.ErrNotInstalled) {
		env := registrytest.RequireEnv
		if os.Getenv(env) != "1" {
			env = requireToolsEnv
		}
		missing(t, env, localregistry.Binary, "docker-registry", err)
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

// sandbox is where a test's tools keep their state: a temporary directory
// whose run, varlib and tmp directories stand in for /run, /var/lib and
// TMPDIR.
type sandbox struct {
	dir     string
	unshare string
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	unshare := lookTool(t, "unshare", "util-linux")
	// A short path: podman refuses a run root over 50 bytes, and a unix
	// socket's path must fit in 108.
	dir, err := os.MkdirTemp("", "lazylayer-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	s := &sandbox{dir: dir, unshare: unshare}
	for _, d := range []string{"run", "varlib", "tmp"} {
		if err := os.Mkdir(s.path(d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// path returns the path of name inside the sandbox.
func (s *sandbox) path(name string) string { return filepath.Join(s.dir, name) }

// command returns a command that runs the program at path in a mount
// namespace of its own, where the sandbox's directories are bound over
// /run and /var/lib (the tools keep caches and run state there, as root)
// and TMPDIR points into it. Mounts the program makes go with it. env is
// added to the environment.
func (s *sandbox) command(ctx context.Context, env []string, path string, args ...string) *exec.Cmd {
	const bind = `mount --bind "$1" /run && mount --bind "$2" /var/lib && shift 2 && exec "$@"`
	argv := append([]string{"--mount", "--propagation", "private", "sh", "-c", bind, "sh", s.path("run"), s.path("varlib"), path}, args...)
	cmd := exec.CommandContext(ctx, s.unshare, argv...)
	cmd.Env = append(append(os.Environ(), "TMPDIR="+s.path("tmp")), env...)
	return cmd
}

// run runs the program at path in the sandbox and returns its standard
// output, failing the test if it fails.
func (s *sandbox) run(t *testing.T, env []string, path string, args ...string) string {
	t.Helper()
	out, err := s.try(t, nil, env, path, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// try is run with stdin, if not nil, as the program's standard input; it
// returns the program's failure, with its error output.
func (s *sandbox) try(t *testing.T, stdin io.Reader, env []string, path string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := s.command(ctx, env, path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(path), strings.Join(args, " "), err, tail(stderr.String()))
	}
	return stdout.String(), nil
}

// tail returns the end of a program's output, where it says why it
// failed.
func tail(s string) string {
	const max = 4 << 10
	if len(s) > max {
		return "..." + s[len(s)-max:]
	}
	return s
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
