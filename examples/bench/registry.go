package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/lazylayer/lazylayer/internal/localregistry"
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
	// SetMultiRange sets how requests for several ranges are answered.
	SetMultiRange(simregistry.MultiRange)
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
// storage in a temporary directory, behind a shaping proxy. Pushes go to
// the registry directly.
type dockerRegistry struct {
	*simregistry.Proxy
	reg *localregistry.Registry
}

func startDockerRegistry(ctx context.Context, link simregistry.Link) (*dockerRegistry, error) {
	reg, err := localregistry.Start(ctx)
	if err != nil {
		return nil, err
	}
	proxy, err := simregistry.NewProxy(reg.URL(), simregistry.WithLink(link))
	if err != nil {
		reg.Close()
		return nil, err
	}
	return &dockerRegistry{Proxy: proxy, reg: reg}, nil
}

// Push stores blob in the registry, bypassing the proxy.
func (r *dockerRegistry) Push(ctx context.Context, repo string, blob []byte) (digest.Digest, error) {
	return r.reg.Push(ctx, repo, blob)
}

// Close stops the proxy and the registry process and removes its storage.
func (r *dockerRegistry) Close() error {
	return errors.Join(r.Proxy.Close(), r.reg.Close())
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
