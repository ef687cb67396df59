package fetcher

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
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

// credential is a username and password for one registry host.
type credential struct{ username, password string }

// maxConfigSize bounds how much of a docker config.json or a token
// response is read.
const maxConfigSize = 4 << 20

// parseDockerConfig reads the "auths" map of a docker config.json: for
// each registry, either a base64 "auth" of "user:password" or separate
// "username" and "password". Keys are normalised to host[:port].
// Credential helpers ("credsStore", "credHelpers") are not consulted.
func parseDockerConfig(data []byte) (map[string]credential, error) {
	var cfg struct {
		Auths map[string]struct {
			Auth     string `json:"auth"`
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("fetcher: docker config: %w", err)
	}
	creds := make(map[string]credential, len(cfg.Auths))
	for key, a := range cfg.Auths {
		c := credential{username: a.Username, password: a.Password}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("fetcher: docker config: auths[%q]: auth is not base64: %w", key, err)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("fetcher: docker config: auths[%q]: auth is not user:password", key)
			}
			c = credential{username: user, password: pass}
		}
		if c.username == "" && c.password == "" {
			continue // e.g. an identity token only, which needs OAuth2
		}
		creds[configKeyHost(key)] = c
	}
	return creds, nil
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
	registry *url.URL    // scheme and host of the registry
	repo     string      // for the default pull scope
	cred     *credential // nil for anonymous access
	client   *http.Client

	refreshing chan struct{}          // held while answering a challenge; a channel so waiting honours ctx
	header     atomic.Pointer[string] // Authorization for requests to the registry host
}

func newAuthenticator(registry *url.URL, repo string, cred *credential, client *http.Client) *authenticator {
	return &authenticator{registry: registry, repo: repo, cred: cred, client: client, refreshing: make(chan struct{}, 1)}
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
		if c.scheme == "basic" && a.cred != nil && used == "" {
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
		return "", fmt.Errorf("fetcher: %s: bearer realm %q is not an http(s) URL: %w", a.registry.Host, truncate(params["realm"], 80), ErrUnauthorized)
	}
	if a.registry.Scheme == "https" && realm.Scheme != "https" {
		return "", fmt.Errorf("fetcher: %s: refusing plain-http token realm %s for an https registry: %w", a.registry.Host, realm.Host, ErrUnauthorized)
	}
	q := realm.Query()
	if s := params["service"]; s != "" {
		q.Set("service", s)
	}
	scope := params["scope"]
	if scope == "" {
		scope = "repository:" + a.repo + ":pull"
	}
	for _, s := range strings.Fields(scope) {
		q.Add("scope", s)
	}
	if a.cred != nil {
		q.Set("account", a.cred.username)
	}
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", fmt.Errorf("fetcher: token request: %w", err)
	}
	if a.cred != nil {
		req.SetBasicAuth(a.cred.username, a.cred.password)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return "", retryable(fmt.Errorf("fetcher: token request to %s: %w", realm.Host, err), 0)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := &StatusError{Method: http.MethodGet, URL: realm.Scheme + "://" + realm.Host + realm.Path, Code: resp.StatusCode}
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return "", fmt.Errorf("fetcher: token: %w: %w", err, ErrUnauthorized)
		}
		return "", statusRetry(resp, fmt.Errorf("fetcher: token: %w", err))
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
