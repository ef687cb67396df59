package registry

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/regauth"
	"github.com/lazylayer/lazylayer/internal/retry"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/internal/useragent"
	"github.com/opencontainers/go-digest"
)

// Defaults of the client's limits.
const (
	DefaultMaxManifestSize = 4 << 20
	DefaultChunkSize       = 8 << 20
	DefaultAttempts        = 5
	DefaultRetryDelay      = 200 * time.Millisecond
	DefaultRequestTimeout  = 2 * time.Minute
)

// Client talks to OCI distribution registries: one Client serves every
// registry and repository, and shares its connections, credentials,
// tokens and what it learns of hosts among them. It is safe for
// concurrent use. Its zero value is not usable; call New.
type Client struct {
	transport    http.RoundTripper // with User-Agent; authentication is added per repository
	ownTransport *http.Transport   // closed by Close; nil for WithTransport's
	userAgent    string
	keychain     authn.Keychain
	insecure     map[string]bool
	mirrors      map[string][]Mirror
	hostsDir     string
	maxManifest  int64
	chunkSize    int64
	retry        retry.Policy
	timeout      time.Duration
	hosts        *fetcher.HostTable

	mu      sync.Mutex
	auths   map[string]*regauth.Authenticator // by scheme://host/repository
	uploads map[string]*url.URL               // failed uploads' sessions, by repository@digest
}

// Option configures New.
type Option func(*Client)

// WithKeychain takes credentials from kc (default authn.DefaultKeychain:
// docker's config.json and the credential helpers it names). It is asked
// for a registry's (or mirror's) credentials at the registry's first
// challenge, once per repository.
func WithKeychain(kc authn.Keychain) Option { return func(c *Client) { c.keychain = kc } }

// WithTransport sends requests through rt instead of a clone of
// http.DefaultTransport (skip_verify of hosts.toml then has no effect).
func WithTransport(rt http.RoundTripper) Option { return func(c *Client) { c.transport = rt } }

// WithUserAgent puts product (such as "mytool/1.2") before lazylayer's
// own "lazylayer/<version>" in every request's User-Agent.
func WithUserAgent(product string) Option { return func(c *Client) { c.userAgent = product } }

// WithInsecure speaks plain HTTP to the registries at hosts (host[:port]
// as in references). Loopback hosts (localhost, 127.0.0.0/8, ::1) are
// spoken to in plain HTTP without it.
func WithInsecure(hosts ...string) Option {
	return func(c *Client) {
		for _, h := range hosts {
			c.insecure[h] = true
		}
	}
}

// WithMaxManifestSize bounds the size of a manifest or index read or
// pushed (default DefaultMaxManifestSize; n <= 0 selects it).
func WithMaxManifestSize(n int64) Option { return func(c *Client) { c.maxManifest = n } }

// WithChunkSize sets the size of the chunks a blob larger than it is
// uploaded in; smaller blobs are uploaded with one request (default
// DefaultChunkSize; n <= 0 selects it). A push holds up to n bytes in
// memory.
func WithChunkSize(n int64) Option { return func(c *Client) { c.chunkSize = n } }

// WithRetry sets how many attempts a request gets and the first backoff
// delay, which doubles per attempt up to 50 times itself; a 429's or
// 503's Retry-After is honoured up to 30 s (defaults DefaultAttempts,
// DefaultRetryDelay).
func WithRetry(attempts int, delay time.Duration) Option {
	return func(c *Client) { c.retry = retry.NewPolicy(attempts, delay) }
}

// WithRequestTimeout bounds each attempt of a request (default
// DefaultRequestTimeout; d <= 0 selects it).
func WithRequestTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// New returns a client.
func New(opts ...Option) (*Client, error) {
	c := &Client{
		keychain: authn.DefaultKeychain,
		insecure: map[string]bool{},
		mirrors:  map[string][]Mirror{},
		retry:    retry.NewPolicy(DefaultAttempts, DefaultRetryDelay),
		hosts:    fetcher.NewHostTable(),
		auths:    map[string]*regauth.Authenticator{},
	}
	for _, o := range opts {
		o(c)
	}
	if c.maxManifest <= 0 {
		c.maxManifest = DefaultMaxManifestSize
	}
	if c.chunkSize <= 0 {
		c.chunkSize = DefaultChunkSize
	}
	if c.timeout <= 0 {
		c.timeout = DefaultRequestTimeout
	}
	if c.transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = fetcher.DefaultMaxConnections
		c.ownTransport, c.transport = t, t
	}
	for host, ms := range c.mirrors {
		for _, m := range ms {
			if _, err := m.endpointURL(); err != nil {
				return nil, fmt.Errorf("registry: mirror of %s: %w", host, err)
			}
		}
	}
	return c, nil
}

// Close closes the idle connections of the client's own transport. The
// client starts no goroutines, so there is nothing else to wait for.
func (c *Client) Close() error {
	if c.ownTransport != nil {
		c.ownTransport.CloseIdleConnections()
	}
	return nil
}

// userAgent sets a User-Agent on every request, token requests and
// redirects included.
type userAgent struct {
	base http.RoundTripper
	ua   string
}

func (t *userAgent) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("User-Agent", t.ua)
	return t.base.RoundTrip(r)
}

func (c *Client) userAgentString() string { return useragent.String(c.userAgent) }

// repositoryPattern is the distribution spec's repository name.
var repositoryPattern = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)

// maxReference bounds a reference's length.
const maxReference = 4096

// endpoint is one host a repository's requests go to: the registry
// itself, or a mirror.
type endpoint struct {
	root   *url.URL // scheme, host and API root ("/v2", or a mirror's override path)
	caps   Capability
	ns     string       // the ns query parameter sent to a mirror; "" for the registry
	client *http.Client // authenticates to the host, for this repository
	rt     http.RoundTripper
}

// url returns the endpoint's URL of an API path under the repository,
// such as "manifests/latest".
func (e *endpoint) url(repo, path string, query url.Values) string {
	u := *e.root
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + repo + "/" + path
	if e.ns != "" {
		if query == nil {
			query = url.Values{}
		}
		query.Set("ns", e.ns)
	}
	u.RawQuery = query.Encode()
	return u.String()
}

// Repository returns the repository ref names, as users write references:
// "ubuntu", "ubuntu:24.04", "localhost:5000/app@sha256:...",
// "[::1]:5000/app:tag", "ghcr.io/org/app:tag@sha256:..." (the digest
// wins over the tag). Docker Hub is the default registry, and library/
// its default namespace. It sends no request, but reads the registry's
// hosts.toml when WithHostsDir is given.
func (c *Client) Repository(ref string) (*Repository, error) {
	if len(ref) > maxReference {
		return nil, fmt.Errorf("registry: reference of %d bytes: longer than %d", len(ref), maxReference)
	}
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("registry: reference %q: %w", untrusted.Short(ref), err)
	}
	repo := parsed.Context()
	if !repositoryPattern.MatchString(repo.RepositoryStr()) {
		return nil, fmt.Errorf("registry: reference %q: repository %q is not a valid name", untrusted.Short(ref), untrusted.Short(repo.RepositoryStr()))
	}
	r := &Repository{c: c, repo: repo.RepositoryStr(), registry: repo.RegistryStr(), pushed: map[digest.Digest][]byte{}}
	switch p := parsed.(type) {
	case name.Digest:
		r.digest, err = digest.Parse(p.DigestStr())
		if err != nil {
			return nil, fmt.Errorf("registry: reference %q: %w", untrusted.Short(ref), err)
		}
		r.name = repo.Name() + "@" + p.DigestStr()
		r.tag = name.DefaultTag
	case name.Tag:
		r.tag = p.TagStr()
		r.name = repo.Name() + ":" + r.tag
	}
	if err := c.endpoints(r); err != nil {
		return nil, err
	}
	return r, nil
}

// endpoints sets r's upstream and mirrors, from WithMirrors and
// WithHostsDir.
func (c *Client) endpoints(r *Repository) error {
	host := r.registry
	apiHost := host
	if host == name.DefaultRegistry {
		apiHost = "registry-1.docker.io" // Docker Hub's API lives elsewhere
	}
	scheme := "https"
	if c.insecure[host] || isLoopback(host) {
		scheme = "http"
	}
	upstream := Mirror{Host: scheme + "://" + apiHost, Capabilities: CapPull | CapResolve | CapPush}
	mirrors := c.mirrors[host]
	if c.hostsDir != "" {
		cfg, err := readHostsDir(c.hostsDir, host)
		if err != nil {
			return err
		}
		if cfg != nil {
			if cfg.Server != nil {
				upstream = *cfg.Server
			}
			mirrors = append(append([]Mirror(nil), mirrors...), cfg.Hosts...)
		}
	}
	ns := host
	if host == name.DefaultRegistry {
		ns = "docker.io" // as containerd names it
	}
	for _, m := range mirrors {
		e, err := c.endpoint(r.repo, m, ns)
		if err != nil {
			return err
		}
		r.mirrors = append(r.mirrors, e)
	}
	e, err := c.endpoint(r.repo, upstream, "")
	if err != nil {
		return err
	}
	r.upstream = e
	return nil
}

// endpoint returns the endpoint of m for repository repo, with the
// client's authenticator for its host and the repository.
func (c *Client) endpoint(repo string, m Mirror, ns string) (*endpoint, error) {
	root, err := m.endpointURL()
	if err != nil {
		return nil, err
	}
	if m.Capabilities == 0 {
		m.Capabilities = CapPull | CapResolve
	}
	base := c.transport
	if m.SkipVerify && c.ownTransport != nil {
		t := c.ownTransport.Clone()
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		base = t
	}
	base = &userAgent{base: base, ua: c.userAgentString()}
	auth := c.authenticator(root, repo, base)
	rt := &regauth.Transport{Base: base, Auth: auth}
	return &endpoint{root: root, caps: m.Capabilities, ns: ns, rt: rt,
		client: &http.Client{Transport: rt, CheckRedirect: limitRedirects}}, nil
}

// authenticator returns the one authenticator of the repository at root's
// host, made on first use: tokens are asked once per repository (and
// scope) for every Repository and blob fetcher of the client.
func (c *Client) authenticator(root *url.URL, repo string, base http.RoundTripper) *regauth.Authenticator {
	key := root.Scheme + "://" + root.Host + "/" + repo
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.auths[key]; a != nil {
		return a
	}
	host := root.Host
	creds := func(ctx context.Context) (*regauth.Credentials, error) {
		reg, err := name.NewRegistry(host, name.WeakValidation)
		if err != nil {
			return nil, nil
		}
		if host == "registry-1.docker.io" {
			reg, _ = name.NewRegistry(name.DefaultRegistry)
		}
		a, err := c.keychain.Resolve(reg)
		if err != nil {
			return nil, fmt.Errorf("registry: keychain for %s: %w", host, err)
		}
		cfg, err := authn.Authorization(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("registry: credentials for %s: %w", host, err)
		}
		cred := regauth.Credentials{Username: cfg.Username, Password: cfg.Password,
			IdentityToken: cfg.IdentityToken, RegistryToken: cfg.RegistryToken}
		if cred == (regauth.Credentials{}) {
			return nil, nil // anonymous
		}
		return &cred, nil
	}
	a := regauth.New(root, repo, creds, &http.Client{Transport: base, Timeout: c.timeout})
	c.auths[key] = a
	return a
}

// isLoopback tells whether host[:port] is a loopback host.
func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// limitRedirects follows up to 10 redirects. Authorization is added by
// the transport to the registry host's requests only.
func limitRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("stopped after 10 redirects")
	}
	return nil
}
