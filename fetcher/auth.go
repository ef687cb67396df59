package fetcher

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/lazylayer/lazylayer/internal/retry"
	"github.com/lazylayer/lazylayer/internal/untrusted"
)

// challenge is one parsed WWW-Authenticate challenge.
type challenge struct {
	scheme string            // lower case: "bearer", "basic"
	params map[string]string // keys lower case
}

// parseChallenges parses WWW-Authenticate header values (RFC 9110 section
// 11.6.1): a scheme, then comma-separated auth-params, with several
// challenges allowed in one value. token68 credentials are skipped.
func parseChallenges(values []string) []challenge {
	var out []challenge
	for _, s := range values {
		cur := -1 // index in out of the challenge being parsed
		for {
			s = strings.TrimLeft(s, " \t,")
			if s == "" {
				break
			}
			tok, rest := cutToken(s)
			if tok == "" { // not a token: skip a byte and resynchronise
				s = s[1:]
				continue
			}
			rest = strings.TrimLeft(rest, " \t")
			if cur >= 0 && strings.HasPrefix(rest, "=") {
				rest = strings.TrimLeft(rest[1:], " \t")
				var val string
				if strings.HasPrefix(rest, `"`) {
					val, rest = cutQuoted(rest)
				} else {
					val, rest = cutToken(rest)
				}
				if key := strings.ToLower(tok); out[cur].params[key] == "" {
					out[cur].params[key] = val
				}
				s = rest
				continue
			}
			// A token not followed by "=" starts a new challenge.
			out = append(out, challenge{scheme: strings.ToLower(tok), params: map[string]string{}})
			cur = len(out) - 1
			s = rest
		}
	}
	return out
}

// cutToken splits off a leading RFC 9110 token (token68 padding "=" and
// "/" excluded, since challenges in practice do not use them).
func cutToken(s string) (tok, rest string) {
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func isTokenChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// cutQuoted splits off a leading quoted-string, undoing backslash escapes.
// An unterminated string runs to the end of s.
func cutQuoted(s string) (val, rest string) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:]
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}

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

// authenticator answers a registry's 401 challenges and remembers the
// resulting Authorization header for later requests.
type authenticator struct {
	registry *url.URL // scheme and host of the registry
	repo     string   // for the default pull scope
	client   *http.Client

	refreshing chan struct{}          // held while answering a challenge; a channel so waiting honours ctx
	header     atomic.Pointer[string] // Authorization for requests to the registry host
	// cred is nil for anonymous access. A credential helper is asked
	// for it at the first challenge, since a registry that never asks
	// needs none. Both are used only while refreshing is held.
	cred   *credential
	helper *credentialHelper
}

func newAuthenticator(registry *url.URL, repo string, cred *credential, helper *credentialHelper, client *http.Client) *authenticator {
	return &authenticator{registry: registry, repo: repo, cred: cred, helper: helper, client: client, refreshing: make(chan struct{}, 1)}
}

func (a *authenticator) current() string {
	if h := a.header.Load(); h != nil {
		return *h
	}
	return ""
}

func (a *authenticator) set(header string) { a.header.Store(&header) }

// refresh handles a 401 answered to a request sent with Authorization
// used. Requests keep using the old header while one of them refreshes;
// when another request has refreshed it meanwhile, refresh returns at once
// so the caller simply retries with the new one.
func (a *authenticator) refresh(ctx context.Context, resp *http.Response, used string) error {
	select {
	case a.refreshing <- struct{}{}:
		defer func() { <-a.refreshing }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if a.current() != used {
		return nil
	}
	if a.helper != nil {
		cred, err := a.helper.get(ctx)
		if err != nil {
			return fmt.Errorf("%w: %w", err, ErrUnauthorized)
		}
		a.cred, a.helper = cred, nil
	}
	chs := parseChallenges(resp.Header.Values("Www-Authenticate"))
	for _, c := range chs {
		if c.scheme == "bearer" {
			tok, err := a.token(ctx, c.params)
			if err != nil {
				return err
			}
			a.set("Bearer " + tok)
			return nil
		}
	}
	for _, c := range chs {
		if c.scheme == "basic" && a.cred != nil && a.cred.identityToken == "" && used == "" {
			a.set("Basic " + base64.StdEncoding.EncodeToString([]byte(a.cred.username+":"+a.cred.password)))
			return nil
		}
	}
	if a.cred == nil {
		return fmt.Errorf("fetcher: %s: no credentials for a registry that requires them: %w", a.registry.Host, ErrUnauthorized)
	}
	return fmt.Errorf("fetcher: %s: credentials refused: %w", a.registry.Host, ErrUnauthorized)
}

// token fetches a bearer token from the challenge's realm (the docker
// token protocol: GET with service and scope, Basic credentials if any).
func (a *authenticator) token(ctx context.Context, params map[string]string) (string, error) {
	realm, err := url.Parse(params["realm"])
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" {
		return "", fmt.Errorf("fetcher: %s: bearer realm %q is not an http(s) URL: %w", a.registry.Host, untrusted.Short(params["realm"]), ErrUnauthorized)
	}
	if a.registry.Scheme == "https" && realm.Scheme != "https" {
		return "", fmt.Errorf("fetcher: %s: refusing plain-http token realm %s for an https registry: %w", a.registry.Host, realm.Host, ErrUnauthorized)
	}
	scope := params["scope"]
	if scope == "" {
		scope = "repository:" + a.repo + ":pull"
	}
	var req *http.Request
	if a.cred != nil && a.cred.identityToken != "" {
		// An identity token is an OAuth2 refresh token, POSTed as a
		// form (the OAuth2 variant of the docker token protocol).
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.cred.identityToken},
			"client_id": {"lazylayer"}, "scope": {scope}}
		if s := params["service"]; s != "" {
			form.Set("service", s)
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, realm.String(), strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		q := realm.Query()
		if s := params["service"]; s != "" {
			q.Set("service", s)
		}
		for _, s := range strings.Fields(scope) {
			q.Add("scope", s)
		}
		if a.cred != nil {
			q.Set("account", a.cred.username)
		}
		realm.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
		if err == nil && a.cred != nil {
			req.SetBasicAuth(a.cred.username, a.cred.password)
		}
	}
	if err != nil {
		return "", fmt.Errorf("fetcher: token request: %w", err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return "", retry.Mark(fmt.Errorf("fetcher: token request to %s: %w", realm.Host, err), 0)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := newStatusError(resp, req.Method, realm.Scheme+"://"+realm.Host+realm.Path)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return "", fmt.Errorf("fetcher: token: %w: %w", err, ErrUnauthorized)
		}
		return "", retry.Status(resp, fmt.Errorf("fetcher: token: %w", err))
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxConfigSize)).Decode(&body); err != nil {
		return "", fmt.Errorf("fetcher: token response from %s: %w: %w", realm.Host, err, ErrBadResponse)
	}
	tok := body.Token
	if tok == "" {
		tok = body.AccessToken
	}
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("fetcher: token response from %s holds no usable token: %w", realm.Host, ErrBadResponse)
	}
	return tok, nil
}
