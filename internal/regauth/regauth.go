// Package regauth authenticates to OCI distribution registries the way
// they ask: it answers a 401's WWW-Authenticate challenge with a bearer
// token from the challenge's realm (the docker token protocol, including
// OAuth2 refresh tokens) or with Basic credentials, and keeps the result
// for later requests. Package fetcher and package registry share it.
//
// Credentials are asked for at the first challenge only, since a registry
// that never challenges needs none. A token response is read up to
// MaxResponse bytes.
package regauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/lazylayer/lazylayer/internal/retry"
	"github.com/lazylayer/lazylayer/internal/untrusted"
)

// ErrUnauthorized reports that the registry refused the request after
// authentication was tried, or that it needs credentials none were given
// for. Package fetcher exports it.
var ErrUnauthorized = errors.New("unauthorized")

// ErrBadResponse reports a token response that holds no usable token.
// Package fetcher exports it.
var ErrBadResponse = errors.New("malformed response")

// MaxResponse bounds how much of a token response is read.
const MaxResponse = 4 << 20

// maxErrorBody bounds how much of a token error response is read.
const maxErrorBody = 16 << 10

// Credentials authenticate to one registry: a username and password, an
// identity token (an OAuth2 refresh token, as `docker login` stores for
// some registries), or a registry token sent as a bearer token as is.
type Credentials struct {
	Username, Password string
	IdentityToken      string
	RegistryToken      string
}

// CredentialFunc returns the credentials for the registry, or nil for
// anonymous access.
type CredentialFunc func(ctx context.Context) (*Credentials, error)

// Authenticator answers one registry repository's 401 challenges and
// remembers the resulting Authorization header for later requests. It is
// safe for concurrent use.
type Authenticator struct {
	registry *url.URL // scheme and host of the registry
	repo     string   // for the default pull scope
	client   *http.Client

	refreshing chan struct{}          // held while answering a challenge; a channel so waiting honours ctx
	header     atomic.Pointer[string] // Authorization for requests to the registry host
	// Used only while refreshing is held: creds is asked once, at the
	// first challenge, until it answers without error.
	creds   CredentialFunc
	cred    *Credentials
	fetched bool
}

// New returns an authenticator for repository repo of the registry at
// registry's scheme and host, which asks creds (nil: anonymous) for
// credentials and requests tokens through client.
func New(registry *url.URL, repo string, creds CredentialFunc, client *http.Client) *Authenticator {
	return &Authenticator{registry: &url.URL{Scheme: registry.Scheme, Host: registry.Host}, repo: repo,
		creds: creds, client: client, refreshing: make(chan struct{}, 1)}
}

// Host returns the registry host requests are authenticated to.
func (a *Authenticator) Host() string { return a.registry.Host }

// Current returns the Authorization header to send, "" before any
// challenge was answered.
func (a *Authenticator) Current() string {
	if h := a.header.Load(); h != nil {
		return *h
	}
	return ""
}

func (a *Authenticator) set(header string) { a.header.Store(&header) }

// Refresh handles a 401 answered to a request sent with Authorization
// used. Requests keep using the old header while one of them refreshes;
// when another request has refreshed it meanwhile, Refresh returns at
// once so the caller simply retries with the new one. Its errors wrap
// ErrUnauthorized when credentials are missing or refused, and are
// marked retry.Temporary when the token service failed in passing.
func (a *Authenticator) Refresh(ctx context.Context, resp *http.Response, used string) error {
	select {
	case a.refreshing <- struct{}{}:
		defer func() { <-a.refreshing }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if a.Current() != used {
		return nil
	}
	if !a.fetched && a.creds != nil {
		cred, err := a.creds(ctx)
		if err != nil {
			return fmt.Errorf("%w: %w", err, ErrUnauthorized)
		}
		a.cred, a.fetched = cred, true
	}
	if a.cred != nil && a.cred.RegistryToken != "" && used == "" {
		a.set("Bearer " + a.cred.RegistryToken)
		return nil
	}
	chs := ParseChallenges(resp.Header.Values("Www-Authenticate"))
	for _, c := range chs {
		if c.Scheme == "bearer" {
			tok, err := a.token(ctx, c.Params)
			if err != nil {
				return err
			}
			a.set("Bearer " + tok)
			return nil
		}
	}
	for _, c := range chs {
		if c.Scheme == "basic" && a.cred != nil && a.cred.IdentityToken == "" && used == "" {
			a.set("Basic " + base64.StdEncoding.EncodeToString([]byte(a.cred.Username+":"+a.cred.Password)))
			return nil
		}
	}
	if a.cred == nil {
		return fmt.Errorf("%s: no credentials for a registry that requires them: %w", a.registry.Host, ErrUnauthorized)
	}
	return fmt.Errorf("%s: credentials refused: %w", a.registry.Host, ErrUnauthorized)
}

// token fetches a bearer token from the challenge's realm (the docker
// token protocol: GET with service and scope, Basic credentials if any).
func (a *Authenticator) token(ctx context.Context, params map[string]string) (string, error) {
	realm, err := url.Parse(params["realm"])
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" {
		return "", fmt.Errorf("%s: bearer realm %q is not an http(s) URL: %w", a.registry.Host, untrusted.Short(params["realm"]), ErrUnauthorized)
	}
	if a.registry.Scheme == "https" && realm.Scheme != "https" {
		return "", fmt.Errorf("%s: refusing plain-http token realm %s for an https registry: %w", a.registry.Host, realm.Host, ErrUnauthorized)
	}
	scope := params["scope"]
	if scope == "" {
		scope = "repository:" + a.repo + ":pull"
	}
	var req *http.Request
	if a.cred != nil && a.cred.IdentityToken != "" {
		// An identity token is an OAuth2 refresh token, POSTed as a
		// form (the OAuth2 variant of the docker token protocol).
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.cred.IdentityToken},
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
			q.Set("account", a.cred.Username)
		}
		realm.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
		if err == nil && a.cred != nil {
			req.SetBasicAuth(a.cred.Username, a.cred.Password)
		}
	}
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return "", retry.Mark(fmt.Errorf("token request to %s: %w", realm.Host, err), 0)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		err := fmt.Errorf("token: %s %s://%s%s: unexpected status %d %s: %q", req.Method, realm.Scheme, realm.Host, realm.Path,
			resp.StatusCode, http.StatusText(resp.StatusCode), untrusted.Short(strings.TrimSpace(string(body))))
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return "", fmt.Errorf("%w: %w", err, ErrUnauthorized)
		}
		return "", retry.Status(resp, err)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxResponse)).Decode(&body); err != nil {
		return "", fmt.Errorf("token response from %s: %w: %w", realm.Host, untrusted.Err(err), ErrBadResponse)
	}
	tok := body.Token
	if tok == "" {
		tok = body.AccessToken
	}
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("token response from %s holds no usable token: %w", realm.Host, ErrBadResponse)
	}
	return tok, nil
}
