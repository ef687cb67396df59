package main

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
	"time"

	"github.com/lazylayer/lazylayer/internal/simregistry"
	"github.com/opencontainers/go-digest"
)

// Registry is where a run's blobs live. Its URL is behind the simulated
// link; pushes bypass the link, so setting up a mode costs no measured
// traffic.
type Registry interface {
	// URL is the base URL clients pull from ("http://127.0.0.1:port").
	URL() string
	// Push stores blob in repository repo and returns its digest.
	Push(ctx context.Context, repo string, blob []byte) (digest.Digest, error)
	// Stats and ResetStats count the pulls through the link.
	Stats() simregistry.Stats
	ResetStats()
	Close() error
}

// newRegistry starts the registry kind names ("sim" or "docker") behind
// link.
func newRegistry(ctx context.Context, kind string, link simregistry.Link) (Registry, error) {
	switch kind {
	case "sim":
		s, err := simregistry.NewServer(simregistry.WithLink(link))
		if err != nil {
			return nil, err
		}
		return simRegistry{s}, nil
	case "docker":
		return startDockerRegistry(ctx, link)
	default:
		return nil, fmt.Errorf("unknown registry %q: want sim or docker", kind)
	}
}

// simRegistry is the in-process registry.
type simRegistry struct{ *simregistry.Server }

func (r simRegistry) Push(_ context.Context, repo string, blob []byte) (digest.Digest, error) {
	return r.AddBlob(repo, blob), nil
}

// dockerRegistry is Debian's docker-registry on a loopback port, with
// storage in a temporary directory, behind a shaping proxy.
type dockerRegistry struct {
	*simregistry.Proxy
	upstream string
	client   *http.Client // to upstream, for setup
	cmd      *exec.Cmd
	exited   chan struct{}
	dir      string
}

// dockerRegistryBinary is where Debian's docker-registry package installs
// the registry.
const dockerRegistryBinary = "/usr/bin/docker-registry"

func startDockerRegistry(ctx context.Context, link simregistry.Link) (_ *dockerRegistry, err error) {
	dir, err := os.MkdirTemp("", "lazylayer-registry-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	config := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "storage"), addr)
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(dockerRegistryBinary, "serve", configPath)
	var logBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("docker registry: %w", err)
	}
	r := &dockerRegistry{upstream: "http://" + addr, client: newLocalClient(), cmd: cmd, exited: make(chan struct{}), dir: dir}
	go func() { cmd.Wait(); close(r.exited) }()
	defer func() {
		if err != nil {
			r.stop()
		}
	}()
	if err := r.waitReady(ctx); err != nil {
		return nil, fmt.Errorf("docker registry: %w; its log:\n%s", err, logBuf.String())
	}
	if r.Proxy, err = simregistry.NewProxy(r.upstream, simregistry.WithLink(link)); err != nil {
		return nil, err
	}
	return r, nil
}

// freeLoopbackAddr returns a 127.0.0.1 port that was free a moment ago.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (r *dockerRegistry) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", r.upstream+"/v2/", nil)
		if resp, err := r.client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-r.exited:
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Push uploads blob with the distribution API's monolithic upload: POST
// to open an upload session, then PUT the whole blob with its digest.
func (r *dockerRegistry) Push(ctx context.Context, repo string, blob []byte) (digest.Digest, error) {
	d := digest.FromBytes(blob)
	start := r.upstream + "/v2/" + repo + "/blobs/uploads/"
	req, _ := http.NewRequestWithContext(ctx, "POST", start, nil)
	resp, err := r.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("push: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("push: POST %s: %s", start, resp.Status)
	}
	loc, err := resp.Location()
	if err != nil {
		return "", fmt.Errorf("push: POST %s: %w", start, err)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	req, _ = http.NewRequestWithContext(ctx, "PUT", loc.String(), bytes.NewReader(blob))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = r.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("push: %w", err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("push: PUT %s: %s: %s", redact(loc), resp.Status, strings.TrimSpace(string(msg)))
	}
	return d, nil
}

// redact drops the upload URL's query, which holds the session state.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	return c.String()
}

// Close stops the proxy and the registry process and removes its storage.
func (r *dockerRegistry) Close() error {
	err := r.Proxy.Close()
	r.stop()
	return err
}

func (r *dockerRegistry) stop() {
	r.cmd.Process.Kill()
	<-r.exited
	os.RemoveAll(r.dir)
}

// newLocalClient returns a client for loopback servers: no proxy from the
// environment and no transparent decompression, so bytes counted are bytes
// on the wire.
func newLocalClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 16,
	}}
}
