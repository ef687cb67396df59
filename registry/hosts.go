package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/lazylayer/lazylayer/internal/untrusted"
)

// Capability is what a host may be asked for, as containerd's hosts.toml
// names it.
type Capability uint8

// Capabilities.
const (
	CapPull    Capability = 1 << iota // manifests by digest, and blobs
	CapResolve                        // tags to manifests
	CapPush                           // uploads; mirrors are never pushed to
)

// Mirror is a host to try before a registry for pulls, such as a
// node-local P2P mirror (Spegel, Dragonfly), or the registry itself as a
// hosts.toml's server names it.
type Mirror struct {
	// Host is the mirror's URL: "https://mirror:5000", with an optional
	// path. The API lives under Host's path + "/v2" unless OverridePath.
	Host string
	// Capabilities the mirror has; 0 means CapPull|CapResolve.
	Capabilities Capability
	// SkipVerify accepts any TLS certificate from the mirror.
	SkipVerify bool
	// OverridePath makes Host's path the API root itself, without /v2.
	OverridePath bool
}

// endpointURL returns the API root of m.
func (m Mirror) endpointURL() (*url.URL, error) {
	u, err := url.Parse(m.Host)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mirror %q: not an http(s)://host[:port][/path] URL", untrusted.Short(m.Host))
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if !m.OverridePath && !strings.HasSuffix(u.Path, "/v2") {
		u.Path += "/v2"
	}
	u.RawPath = ""
	return u, nil
}

// canonicalize checks m's URL and writes it as url.URL does, with its
// scheme in lower case ("HTTPS://m" is "https://m"), so that what a
// hosts.toml says is what callers see.
func (m *Mirror) canonicalize() error {
	if _, err := m.endpointURL(); err != nil {
		return err
	}
	u, _ := url.Parse(m.Host)
	m.Host = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	return nil
}

// WithMirrors makes pulls from the registry at host (as written in
// references: "docker.io", "ghcr.io", "localhost:5000") try mirrors
// first, in order, each for what its capabilities allow, and the
// registry last. Requests to a mirror carry the ns query parameter naming
// the registry, as containerd sends it.
func WithMirrors(host string, mirrors ...Mirror) Option {
	return func(c *Client) {
		if reg, err := name.NewRegistry(host); err == nil {
			host = reg.RegistryStr()
		}
		c.mirrors[host] = append(c.mirrors[host], mirrors...)
	}
}

// WithHostsDir reads each registry's mirrors from dir/<host>/hosts.toml,
// else dir/_default/hosts.toml, in containerd's form (see the package
// documentation), when a Repository of it is made. Mirrors given with
// WithMirrors come first.
func WithHostsDir(dir string) Option { return func(c *Client) { c.hostsDir = dir } }

// Bounds of a hosts.toml.
const (
	MaxHostsFileSize = 64 << 10
	MaxHosts         = 64
)

// HostsConfig is what a hosts.toml says of a registry.
type HostsConfig struct {
	Server *Mirror  // the registry itself; nil: the default host
	Hosts  []Mirror // in the file's order
}

// hostsFile is the hosts.toml schema this package reads; other keys
// (ca, client, header, dial_timeout) are ignored.
type hostsFile struct {
	Server       string                `toml:"server"`
	Capabilities []string              `toml:"capabilities"`
	SkipVerify   bool                  `toml:"skip_verify"`
	OverridePath bool                  `toml:"override_path"`
	Host         map[string]hostsEntry `toml:"host"`
}

type hostsEntry struct {
	Capabilities []string `toml:"capabilities"`
	SkipVerify   bool     `toml:"skip_verify"`
	OverridePath bool     `toml:"override_path"`
}

// ErrBadHostsFile reports a hosts.toml that cannot be read.
var ErrBadHostsFile = errors.New("bad hosts.toml")

// ParseHosts reads a hosts.toml of at most MaxHostsFileSize bytes
// holding at most MaxHosts hosts. Errors wrap ErrBadHostsFile.
func ParseHosts(data []byte) (*HostsConfig, error) {
	if len(data) > MaxHostsFileSize {
		return nil, fmt.Errorf("registry: hosts.toml of %d bytes: over %d: %w", len(data), MaxHostsFileSize, ErrBadHostsFile)
	}
	var f hostsFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		return nil, fmt.Errorf("registry: hosts.toml: %w: %w", untrusted.Err(err), ErrBadHostsFile)
	}
	if len(f.Host) > MaxHosts {
		return nil, fmt.Errorf("registry: hosts.toml: %d hosts: over %d: %w", len(f.Host), MaxHosts, ErrBadHostsFile)
	}
	cfg := &HostsConfig{}
	if f.Server != "" {
		caps, err := parseCapabilities(f.Capabilities, CapPull|CapResolve|CapPush)
		if err != nil {
			return nil, err
		}
		m := Mirror{Host: f.Server, Capabilities: caps, SkipVerify: f.SkipVerify, OverridePath: f.OverridePath}
		if err := m.canonicalize(); err != nil {
			return nil, fmt.Errorf("registry: hosts.toml: server: %w: %w", err, ErrBadHostsFile)
		}
		cfg.Server = &m
	}
	// The hosts in the file's order, which decoding into a map loses.
	seen := map[string]bool{}
	for _, key := range md.Keys() {
		if len(key) != 2 || key[0] != "host" || seen[key[1]] {
			continue
		}
		seen[key[1]] = true
		h := f.Host[key[1]]
		caps, err := parseCapabilities(h.Capabilities, CapPull|CapResolve)
		if err != nil {
			return nil, err
		}
		m := Mirror{Host: key[1], Capabilities: caps, SkipVerify: h.SkipVerify, OverridePath: h.OverridePath}
		if err := m.canonicalize(); err != nil {
			return nil, fmt.Errorf("registry: hosts.toml: %w: %w", err, ErrBadHostsFile)
		}
		cfg.Hosts = append(cfg.Hosts, m)
	}
	return cfg, nil
}

func parseCapabilities(names []string, def Capability) (Capability, error) {
	if names == nil {
		return def, nil
	}
	var caps Capability
	for _, n := range names {
		switch n {
		case "pull":
			caps |= CapPull
		case "resolve":
			caps |= CapResolve
		case "push":
			caps |= CapPush
		default:
			return 0, fmt.Errorf("registry: hosts.toml: capability %q: %w", untrusted.Short(n), ErrBadHostsFile)
		}
	}
	return caps, nil
}

// readHostsDir reads dir/<host>/hosts.toml, else dir/_default/hosts.toml;
// it returns nil if neither exists.
func readHostsDir(dir, host string) (*HostsConfig, error) {
	if host == name.DefaultRegistry {
		host = "docker.io"
	}
	for _, sub := range []string{host, "_default"} {
		if sub == "." || sub == ".." || strings.ContainsAny(sub, `/\`) {
			continue
		}
		path := filepath.Join(dir, sub, "hosts.toml")
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		data, err := io.ReadAll(io.LimitReader(f, MaxHostsFileSize+1))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("registry: %s: %w", path, err)
		}
		cfg, err := ParseHosts(data)
		if err != nil {
			return nil, fmt.Errorf("%w (in %s)", err, path)
		}
		return cfg, nil
	}
	return nil, nil
}
