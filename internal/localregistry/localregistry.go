package localregistry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

// Binary is where Debian's docker-registry package installs the registry.
const Binary = "/usr/bin/docker-registry"

// ErrNotInstalled reports that the registry binary is missing.
var ErrNotInstalled = errors.New("localregistry: docker-registry is not installed")

// readyTimeout bounds how long Start waits for the registry's first answer.
const readyTimeout = 30 * time.Second

// Option configures Start.
type Option func(*config)

type config struct {
	binary             string
	username, password string
	storageDir         string
	log                io.Writer
}

// WithBasicAuth makes the registry require HTTP Basic auth as username
// with password, checked against a bcrypt htpasswd file.
func WithBasicAuth(username, password string) Option {
	return func(c *config) { c.username, c.password = username, password }
}

// WithStorageDir makes the registry keep its blobs in dir, which Close
// leaves in place. By default they go to a temporary directory that Close
// removes.
func WithStorageDir(dir string) Option { return func(c *config) { c.storageDir = dir } }

// WithLog sends the registry process's output to w. Start's errors quote
// the start of that output whether or not w is set.
func WithLog(w io.Writer) Option { return func(c *config) { c.log = w } }

// WithBinary runs the registry binary at path instead of Binary.
func WithBinary(path string) Option { return func(c *config) { c.binary = path } }

// Registry is a running docker-registry process. Its methods are safe for
// concurrent use.
type Registry struct {
	url, host string
	client    *Client
	cmd       *exec.Cmd
	exited    chan struct{} // closed when the process has exited
	tempDir   string        // removed by Close
	closeOnce sync.Once
}

// Start runs the registry binary on a free loopback port and waits until
// its /v2/ endpoint answers. ctx bounds the start only; the registry runs
// until Close. It returns an error wrapping ErrNotInstalled when the
// binary is missing.
func Start(ctx context.Context, opts ...Option) (*Registry, error) {
	c := config{binary: Binary}
	for _, o := range opts {
		o(&c)
	}
	if _, err := os.Stat(c.binary); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotInstalled, err)
	}
	var err error
	for try := 0; try < 3; try++ { // the free port may be taken before the registry binds it
		var r *Registry
		if r, err = start(ctx, c); err == nil {
			return r, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

func start(ctx context.Context, c config) (_ *Registry, err error) {
	tempDir, err := os.MkdirTemp("", "lazylayer-registry-")
	if err != nil {
		return nil, fmt.Errorf("localregistry: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tempDir)
		}
	}()
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, fmt.Errorf("localregistry: %w", err)
	}
	storage := c.storageDir
	if storage == "" {
		storage = filepath.Join(tempDir, "storage")
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
  secret: localregistry
`, storage, addr)
	if c.username != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(c.password), bcrypt.MinCost)
		if err != nil {
			return nil, fmt.Errorf("localregistry: htpasswd: %w", err)
		}
		htpasswd := filepath.Join(tempDir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(c.username+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("localregistry: %w", err)
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: localregistry\n    path: %s\n", htpasswd)
	}
	cfgPath := filepath.Join(tempDir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, fmt.Errorf("localregistry: %w", err)
	}

	head := &headBuffer{}
	var out io.Writer = head
	if c.log != nil {
		out = io.MultiWriter(head, c.log)
	}
	cmd := exec.Command(c.binary, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("localregistry: start %s: %w", c.binary, err)
	}
	r := &Registry{
		url:     "http://" + addr,
		host:    addr,
		cmd:     cmd,
		exited:  make(chan struct{}),
		tempDir: tempDir,
	}
	r.client = &Client{URL: r.url, Username: c.username, Password: c.password, HTTP: newLoopbackClient()}
	go func() { cmd.Wait(); close(r.exited) }()
	if err := r.waitReady(ctx); err != nil {
		r.stop()
		return nil, fmt.Errorf("localregistry: %s at %s: %w; its output:\n%s", c.binary, addr, err, head.String())
	}
	return r, nil
}

// waitReady polls /v2/ until it answers 200, or 401 behind auth.
func (r *Registry) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/v2/", nil)
		if err != nil {
			return err
		}
		if resp, err := r.client.HTTP.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		select {
		case <-r.exited:
			return fmt.Errorf("exited before it answered: %v", r.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("no answer from /v2/: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// URL returns the registry's base URL, "http://127.0.0.1:port".
func (r *Registry) URL() string { return r.url }

// Host returns the registry's address, "127.0.0.1:port", the host part of
// an image reference.
func (r *Registry) Host() string { return r.host }

// BlobURL returns the distribution API URL of blob d in repository repo.
func (r *Registry) BlobURL(repo string, d digest.Digest) string {
	return BlobURL(r.url, repo, d)
}

// Push stores blob in repository repo, with the registry's credentials if
// it has any, and returns the blob's digest.
func (r *Registry) Push(ctx context.Context, repo string, blob []byte) (digest.Digest, error) {
	return r.client.Push(ctx, repo, blob)
}

// Close stops the registry process and removes its temporary files (but
// not a directory given with WithStorageDir). It is safe to call more
// than once.
func (r *Registry) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.client.HTTP.CloseIdleConnections()
		err = r.stop()
	})
	return err
}

func (r *Registry) stop() error {
	// The registry holds no state worth a graceful shutdown: blobs are
	// committed to storage before the PUT that uploads them answers.
	r.cmd.Process.Kill()
	<-r.exited
	if err := os.RemoveAll(r.tempDir); err != nil {
		return fmt.Errorf("localregistry: %w", err)
	}
	return nil
}

// BlobURL returns the distribution API URL of blob d in repository repo
// of the registry at base ("http://host:port").
func BlobURL(base, repo string, d digest.Digest) string {
	return strings.TrimSuffix(base, "/") + "/v2/" + repo + "/blobs/" + d.String()
}

// Client pushes blobs to a distribution registry. Its zero value is not
// usable: URL is required. A Client is safe for concurrent use.
type Client struct {
	URL                string       // base URL, "http://host:port"
	Username, Password string       // Basic auth credentials, if Username is set
	HTTP               *http.Client // nil means http.DefaultClient
}

// Push uploads blob to repository repo with a monolithic upload (POST to
// open an upload session, then PUT of the whole blob with its digest) and
// returns the blob's digest.
func (c *Client) Push(ctx context.Context, repo string, blob []byte) (digest.Digest, error) {
	d := digest.FromBytes(blob)
	start := strings.TrimSuffix(c.URL, "/") + "/v2/" + repo + "/blobs/uploads/"
	resp, err := c.do(ctx, http.MethodPost, start, nil, "")
	if err != nil {
		return "", fmt.Errorf("localregistry: push to %s: %w", repo, err)
	}
	msg := readMessage(resp)
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("localregistry: push to %s: POST %s: %s%s", repo, start, resp.Status, msg)
	}
	loc, err := resp.Location()
	if err != nil {
		return "", fmt.Errorf("localregistry: push to %s: POST %s: %w", repo, start, err)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	resp, err = c.do(ctx, http.MethodPut, loc.String(), blob, "")
	if err != nil {
		return "", fmt.Errorf("localregistry: push to %s: %w", repo, err)
	}
	msg = readMessage(resp)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("localregistry: push to %s: PUT %s: %s%s", repo, withoutQuery(loc), resp.Status, msg)
	}
	return d, nil
}

// PushManifest stores manifest, of the given media type, in repository
// repo under ref (a tag, or its digest), and returns its digest. The
// blobs it names must have been pushed first.
func (c *Client) PushManifest(ctx context.Context, repo, ref, mediaType string, manifest []byte) (digest.Digest, error) {
	target := strings.TrimSuffix(c.URL, "/") + "/v2/" + repo + "/manifests/" + ref
	resp, err := c.do(ctx, http.MethodPut, target, manifest, mediaType)
	if err != nil {
		return "", fmt.Errorf("localregistry: push manifest to %s: %w", repo, err)
	}
	msg := readMessage(resp)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("localregistry: push manifest: PUT %s: %s%s", target, resp.Status, msg)
	}
	return digest.FromBytes(manifest), nil
}

// PushManifest is Client.PushManifest with the registry's credentials.
func (r *Registry) PushManifest(ctx context.Context, repo, ref, mediaType string, manifest []byte) (digest.Digest, error) {
	return r.client.PushManifest(ctx, repo, ref, mediaType, manifest)
}

// do sends a request with body, if not nil, as contentType ("" for
// application/octet-stream).
func (c *Client) do(ctx context.Context, method, target string, body []byte, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	if body != nil {
		if contentType == "" {
			contentType = "application/octet-stream"
		}
		req.Header.Set("Content-Type", contentType)
	}
	if c.Username != "" {
		req.SetBasicAuth(c.Username, c.Password)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	return hc.Do(req)
}

// readMessage reads and closes a response body, returning its start as
// ": text" for an error message, or "" when it is empty.
func readMessage(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if s := strings.TrimSpace(string(b)); s != "" {
		return ": " + s
	}
	return ""
}

// withoutQuery drops an upload URL's query, which holds session state.
func withoutQuery(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	return c.String()
}

// freeLoopbackAddr returns a 127.0.0.1 address whose port was free a
// moment ago.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// newLoopbackClient returns a client for a loopback registry: no proxy
// from the environment and no transparent decompression.
func newLoopbackClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 16,
	}}
}

// headBuffer keeps the first 64 KiB of a process's output, where the
// reason for a failure is, and drops the rest.
type headBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *headBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := 64<<10 - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *headBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
