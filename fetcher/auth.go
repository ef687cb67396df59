package fetcher

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/lazylayer/lazylayer/internal/regauth"
	"github.com/lazylayer/lazylayer/internal/untrusted"
)

// credential is what authenticates to one registry host: a username and
// password, or an identity token (an OAuth2 refresh token, as `docker
// login` stores for some registries and credential helpers return).
type credential struct{ username, password, identityToken string }

// maxConfigSize bounds how much of a docker config.json, a token response
// or a credential helper's answer is read.
const maxConfigSize = 4 << 20

// dockerConfig is what a docker config.json says about credentials.
type dockerConfig struct {
	auths       map[string]credential // by host[:port]
	credsStore  string                // the helper for every registry
	credHelpers map[string]string     // helpers by host[:port]; before credsStore
}

// parseDockerConfig reads the credentials of a docker config.json: the
// "auths" map (for each registry a base64 "auth" of "user:password",
// separate "username" and "password", or an "identitytoken") and the
// credential helpers it names ("credsStore", "credHelpers"). Keys are
// normalised to host[:port].
func parseDockerConfig(data []byte) (dockerConfig, error) {
	var raw struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
		CredsStore  string            `json:"credsStore"`
		CredHelpers map[string]string `json:"credHelpers"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return dockerConfig{}, fmt.Errorf("fetcher: docker config: %w", err)
	}
	cfg := dockerConfig{auths: make(map[string]credential, len(raw.Auths)), credsStore: raw.CredsStore}
	for key, a := range raw.Auths {
		c := credential{username: a.Username, password: a.Password, identityToken: a.IdentityToken}
		if a.Auth != "" {
			decoded, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return dockerConfig{}, fmt.Errorf("fetcher: docker config: auths[%q]: auth is not base64: %w", key, err)
			}
			user, pass, ok := strings.Cut(string(decoded), ":")
			if !ok {
				return dockerConfig{}, fmt.Errorf("fetcher: docker config: auths[%q]: auth is not user:password", key)
			}
			c.username, c.password = user, pass
		}
		if c == (credential{}) {
			continue // a placeholder, as docker writes next to a credsStore
		}
		cfg.auths[configKeyHost(key)] = c
	}
	for key, helper := range raw.CredHelpers {
		if cfg.credHelpers == nil {
			cfg.credHelpers = make(map[string]string)
		}
		cfg.credHelpers[configKeyHost(key)] = helper
	}
	for _, helper := range append(slices.Collect(maps.Values(cfg.credHelpers)), cfg.credsStore) {
		if helper != "" && !validHelperName(helper) {
			return dockerConfig{}, fmt.Errorf("fetcher: docker config: credential helper %q: not a helper name", untrusted.Short(helper))
		}
	}
	return cfg, nil
}

// lookup returns how to authenticate to host, as docker does: with the
// helper credHelpers names for it, else with the credsStore helper, else
// with its "auths" entry. Both results are nil for anonymous access.
func (c dockerConfig) lookup(host string) (*credential, *credentialHelper) {
	host = strings.ToLower(host)
	name := c.credHelpers[host]
	if name == "" {
		name = c.credsStore
	}
	if name != "" {
		return nil, newCredentialHelper(name, host)
	}
	if cred, ok := c.auths[host]; ok {
		return &cred, nil
	}
	return nil, nil
}

// configKeyHost turns a docker config key ("https://index.docker.io/v1/",
// "registry.example.com:5000") into the host[:port] it stands for.
func configKeyHost(key string) string {
	host := key
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	host, _, _ = strings.Cut(host, "/")
	if host == "index.docker.io" || host == "docker.io" {
		host = "registry-1.docker.io"
	}
	return strings.ToLower(host)
}

// credentialFunc returns what asks a registry for credentials: the
// helper, run at the first challenge, else cred.
func credentialFunc(cred *credential, helper *credentialHelper) regauth.CredentialFunc {
	if helper == nil && cred == nil {
		return nil
	}
	return func(ctx context.Context) (*regauth.Credentials, error) {
		c := cred
		if helper != nil {
			var err error
			if c, err = helper.get(ctx); err != nil || c == nil {
				return nil, err
			}
		}
		return &regauth.Credentials{Username: c.username, Password: c.password, IdentityToken: c.identityToken}, nil
	}
}
