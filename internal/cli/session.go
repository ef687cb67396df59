package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/registry"
	"github.com/spf13/pflag"
)

// globalFlags are the flags every verb takes.
type globalFlags struct {
	platform string
	insecure []string
	hostsDir string
	cacheDir string
	cacheMax int64
}

func (g *globalFlags) register(f *pflag.FlagSet) {
	f.StringVar(&g.platform, "platform", "", "the platform to pick from a multi-platform image, as os/arch[/variant] (default linux and this machine's architecture)")
	f.StringSliceVar(&g.insecure, "insecure", nil, "registries (host[:port]) to speak plain HTTP to; loopback registries always are")
	f.StringVar(&g.hostsDir, "hosts-dir", "/etc/containerd/certs.d", "the directory of containerd hosts.toml files naming registry mirrors")
	f.StringVar(&g.cacheDir, "cache-dir", "", "a directory to keep fetched chunks in across runs (default: memory only)")
	f.Int64Var(&g.cacheMax, "cache-size", 4<<30, "the most bytes --cache-dir may hold")
}

// session is what one run of a verb holds: one registry client, the
// traffic it caused, and the chunk cache lazy reads share.
type session struct {
	registry *registry.Client
	traffic  *countingTransport
	cache    cache.Cache
}

func (c *cli) newSession() (*session, error) {
	s := &session{traffic: &countingTransport{next: http.DefaultTransport}}
	var err error
	s.registry, err = registry.New(
		registry.WithTransport(s.traffic),
		registry.WithInsecure(c.insecure...),
		registry.WithHostsDir(c.hostsDir),
		registry.WithUserAgent("lazylayer-cli/"+version()),
	)
	if err != nil {
		return nil, err
	}
	s.cache = cache.NewMemory(512 << 20)
	if c.cacheDir != "" {
		dir, err := cache.NewDir(c.cacheDir, c.cacheMax)
		if err != nil {
			s.registry.Close()
			return nil, err
		}
		s.cache = cache.NewTiered(s.cache, dir)
	}
	return s, nil
}

func (s *session) Close() error { return s.registry.Close() }

// source returns the image store ref names.
func (s *session) source(ref string) (image.Source, error) {
	return image.ParseReference(ref, s.registry)
}

// openImage opens the image ref names lazily in a session of its own,
// runs fn on it, and closes both. Layers that are not seekable are
// fetched whole when whole is set, so that every image can be read.
func (c *cli) openImage(ctx context.Context, ref string, whole bool, fn func(s *session, img *image.Image) error) error {
	s, err := c.newSession()
	if err != nil {
		return err
	}
	defer s.Close()
	src, err := s.source(ref)
	if err != nil {
		return err
	}
	if cl, ok := src.(io.Closer); ok {
		defer cl.Close()
	}
	opts := []image.Option{image.WithReaderOptions(reader.WithCache(s.cache))}
	if c.platform != "" {
		opts = append(opts, image.WithPlatform(c.platform))
	}
	if whole {
		opts = append(opts, image.WithFetchWhole(""))
	}
	img, err := image.Open(ctx, src, opts...)
	if err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	defer img.Close()
	return fn(s, img)
}

// countingTransport counts the requests it sends and the response bytes
// they bring, so that each verb can say what it cost.
type countingTransport struct {
	next     http.RoundTripper
	requests atomic.Int64
	bytes    atomic.Int64
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.requests.Add(1)
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, n: &t.bytes}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// cost is what a verb's network traffic was.
type cost struct {
	Requests int64 `json:"requests"`
	Bytes    int64 `json:"bytes"`
}

func (s *session) cost() cost {
	return cost{Requests: s.traffic.requests.Load(), Bytes: s.traffic.bytes.Load()}
}

func (c cost) String() string {
	return fmt.Sprintf("%s in %d requests", humanBytes(c.Bytes), c.Requests)
}

// humanBytes formats n in binary units, as ls -h does.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
