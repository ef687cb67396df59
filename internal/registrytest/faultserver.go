package registrytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Fault is one way a BlobServer misbehaves in answer to a blob GET.
type Fault int

// Faults a BlobServer can inject.
const (
	NoFault               Fault = iota
	FaultDrop                   // cut the connection halfway through the body
	FaultTruncate               // send half the body, with a Content-Length that says so
	FaultFlip                   // flip one byte in the middle of the body
	Fault500                    // 500 Internal Server Error
	Fault503                    // 503 Service Unavailable with Retry-After
	Fault429                    // 429 Too Many Requests with Retry-After
	FaultIgnoreRange            // 200 with the whole blob, as if Range were absent
	FaultBadContentRange        // 206 whose Content-Range is off by one byte
	FaultRejectMultiRange       // 400 to a multi-range request (single ranges are served)
	FaultSlow                   // trickle the body a byte at a time
)

var faultNames = [...]string{"none", "drop", "truncate", "flip", "500", "503", "429",
	"ignore-range", "bad-content-range", "reject-multi-range", "slow"}

func (f Fault) String() string {
	if f >= 0 && int(f) < len(faultNames) {
		return faultNames[f]
	}
	return "Fault(" + strconv.Itoa(int(f)) + ")"
}

// AllFaults lists every fault but NoFault.
var AllFaults = []Fault{FaultDrop, FaultTruncate, FaultFlip, Fault500, Fault503, Fault429,
	FaultIgnoreRange, FaultBadContentRange, FaultRejectMultiRange, FaultSlow}

// Logged is one request a BlobServer (or its object store) received.
type Logged struct {
	Method        string
	Path          string
	Range         string
	Authorization string
	Fault         Fault
}

// BlobServer serves one blob at /v2/<Repo>/blobs/<Digest> like a
// registry, with http.ServeContent's range handling (single and
// multipart), and misbehaves on purpose. Stack-level tests use it to check
// that faults never yield wrong bytes without an error.
type BlobServer struct {
	*httptest.Server
	Blob   []byte
	Repo   string
	Digest digest.Digest

	store *httptest.Server // redirect target, when enabled

	cfg serverConfig

	mu     sync.Mutex
	rng    *rand.Rand
	log    []Logged
	gets   int // blob GETs that reached serveBlob
	tokens int
}

// ServerOption configures NewBlobServer.
type ServerOption func(*serverConfig)

type serverConfig struct {
	choose       func(n int, multiRange bool) Fault
	rate         float64
	seed         uint64
	faults       []Fault
	retryAfter   string
	basicUser    string
	basicPass    string
	bearer       bool
	refreshToken string // the identity token /token takes as an OAuth2 refresh token
	redirect     bool
	slowInterval time.Duration
}

// WithFaults makes the server answer its n-th blob GET (from 1) with the
// fault choose returns.
func WithFaults(choose func(n int, multiRange bool) Fault) ServerOption {
	return func(c *serverConfig) { c.choose = choose }
}

// WithFaultRate makes each blob GET fail with probability rate, with a
// fault drawn uniformly from faults (AllFaults if none), from a random
// sequence fixed by seed.
func WithFaultRate(rate float64, seed uint64, faults ...Fault) ServerOption {
	return func(c *serverConfig) {
		if len(faults) == 0 {
			faults = AllFaults
		}
		c.rate, c.seed, c.faults = rate, seed, faults
	}
}

// WithRetryAfter sets the Retry-After of 429 and 503 answers (default "0").
func WithRetryAfter(v string) ServerOption { return func(c *serverConfig) { c.retryAfter = v } }

// WithSlowInterval sets the pause between bytes of FaultSlow (default 20ms).
func WithSlowInterval(d time.Duration) ServerOption {
	return func(c *serverConfig) { c.slowInterval = d }
}

// WithServerBasicAuth requires HTTP Basic auth on blob requests.
func WithServerBasicAuth(username, password string) ServerOption {
	return func(c *serverConfig) { c.basicUser, c.basicPass = username, password }
}

// WithBearerAuth requires a bearer token from the server's /token
// endpoint, which demands Basic credentials username and password unless
// both are empty (anonymous tokens).
func WithBearerAuth(username, password string) ServerOption {
	return func(c *serverConfig) { c.bearer, c.basicUser, c.basicPass = true, username, password }
}

// WithRefreshToken requires a bearer token from the server's /token
// endpoint, which gives one only for an OAuth2 POST of the refresh token
// tok (an identity token, as docker stores for some registries).
func WithRefreshToken(tok string) ServerOption {
	return func(c *serverConfig) { c.bearer, c.refreshToken = true, tok }
}

// WithRedirect makes blob GETs answer 307 to a second server, an "object
// store" on another host (localhost instead of 127.0.0.1), which serves
// the bytes and logs the Authorization it receives.
func WithRedirect() ServerOption { return func(c *serverConfig) { c.redirect = true } }

// NewBlobServer starts a BlobServer for blob, closed when the test ends.
func NewBlobServer(t testing.TB, blob []byte, opts ...ServerOption) *BlobServer {
	s := &BlobServer{Blob: blob, Repo: "test/blob", Digest: digest.FromBytes(blob)}
	s.cfg = serverConfig{retryAfter: "0", slowInterval: 20 * time.Millisecond}
	for _, o := range opts {
		o(&s.cfg)
	}
	s.rng = rand.New(rand.NewPCG(s.cfg.seed, 0x1a2b))
	s.Server = httptest.NewServer(http.HandlerFunc(s.serveRegistry))
	t.Cleanup(s.Server.Close)
	if s.cfg.redirect {
		s.store = httptest.NewServer(http.HandlerFunc(s.serveStore))
		t.Cleanup(s.store.Close)
	}
	return s
}

// BlobURL returns the blob's distribution API URL.
func (s *BlobServer) BlobURL() string {
	return s.URL + "/v2/" + s.Repo + "/blobs/" + s.Digest.String()
}

// Log returns the requests received so far, by both servers.
func (s *BlobServer) Log() []Logged {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Logged(nil), s.log...)
}

func (s *BlobServer) record(l Logged) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, l)
}

func (s *BlobServer) serveRegistry(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		s.serveToken(w, r)
		return
	}
	if r.URL.Path != "/v2/"+s.Repo+"/blobs/"+s.Digest.String() {
		http.NotFound(w, r)
		return
	}
	if !s.authorized(w, r) {
		s.record(Logged{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), Authorization: r.Header.Get("Authorization")})
		return
	}
	if s.store != nil && r.Method == http.MethodGet {
		s.record(Logged{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), Authorization: r.Header.Get("Authorization")})
		target := strings.Replace(s.store.URL, "127.0.0.1", "localhost", 1) + "/bucket/blob?X-Signature=secret"
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
		return
	}
	s.serveBlob(w, r)
}

func (s *BlobServer) serveStore(w http.ResponseWriter, r *http.Request) {
	s.serveBlob(w, r)
}

// authorized checks the request's credentials and answers 401 with a
// challenge when they are missing or wrong.
func (s *BlobServer) authorized(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case s.cfg.bearer:
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && strings.HasPrefix(tok, "token-") {
			return true
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="registrytest",scope="repository:%s:pull"`, s.URL, s.Repo))
	case s.cfg.basicUser != "":
		if u, p, ok := r.BasicAuth(); ok && u == s.cfg.basicUser && p == s.cfg.basicPass {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
	default:
		return true
	}
	http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
	return false
}

func (s *BlobServer) serveToken(w http.ResponseWriter, r *http.Request) {
	params := r.URL.Query()
	if s.cfg.refreshToken != "" {
		if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "refresh_token" ||
			r.PostForm.Get("refresh_token") != s.cfg.refreshToken {
			http.Error(w, "bad refresh token", http.StatusUnauthorized)
			return
		}
		params = r.PostForm
	}
	if s.cfg.basicUser != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != s.cfg.basicUser || p != s.cfg.basicPass {
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
	}
	if params.Get("scope") != "repository:"+s.Repo+":pull" || params.Get("service") != "registrytest" {
		http.Error(w, "bad scope or service", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.tokens++
	tok := fmt.Sprintf("token-%d", s.tokens)
	s.mu.Unlock()
	if s.cfg.refreshToken != "" {
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": 300})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 300})
}

// serveBlob answers HEAD and GET for the blob, injecting a fault into GETs.
func (s *BlobServer) serveBlob(w http.ResponseWriter, r *http.Request) {
	rangeHdr := r.Header.Get("Range")
	multi := strings.Contains(rangeHdr, ",")
	fault := NoFault
	if r.Method == http.MethodGet {
		fault = s.pickFault(multi)
	}
	s.record(Logged{Method: r.Method, Path: r.URL.Path, Range: rangeHdr, Authorization: r.Header.Get("Authorization"), Fault: fault})

	switch fault {
	case Fault500:
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	case Fault503, Fault429:
		w.Header().Set("Retry-After", s.cfg.retryAfter)
		code := http.StatusServiceUnavailable
		if fault == Fault429 {
			code = http.StatusTooManyRequests
		}
		http.Error(w, "injected failure", code)
		return
	case FaultRejectMultiRange:
		if multi {
			http.Error(w, "multi-range not supported", http.StatusBadRequest)
			return
		}
	case FaultIgnoreRange:
		r.Header.Del("Range")
	}
	fw := &faultWriter{ResponseWriter: w, fault: fault, rangeHdr: rangeHdr, size: int64(len(s.Blob)), slow: s.cfg.slowInterval, done: r.Context().Done()}
	w.Header().Set("Docker-Content-Digest", s.Digest.String())
	http.ServeContent(fw, r, "", time.Time{}, bytes.NewReader(s.Blob))
}

func (s *BlobServer) pickFault(multi bool) Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	if s.cfg.choose != nil {
		return s.cfg.choose(s.gets, multi)
	}
	if s.cfg.rate > 0 && s.rng.Float64() < s.cfg.rate {
		return s.cfg.faults[s.rng.IntN(len(s.cfg.faults))]
	}
	return NoFault
}

// faultWriter corrupts what http.ServeContent writes.
type faultWriter struct {
	http.ResponseWriter
	fault    Fault
	rangeHdr string
	size     int64
	slow     time.Duration
	done     <-chan struct{}

	total   int64 // body length announced
	written int64
}

func (w *faultWriter) WriteHeader(code int) {
	h := w.Header()
	w.total, _ = strconv.ParseInt(h.Get("Content-Length"), 10, 64)
	switch w.fault {
	case FaultTruncate:
		w.total /= 2
		h.Set("Content-Length", strconv.FormatInt(w.total, 10))
	case FaultBadContentRange:
		if code == http.StatusPartialContent {
			first, _, _ := strings.Cut(strings.TrimPrefix(w.rangeHdr, "bytes="), ",")
			a, b, _ := strings.Cut(first, "-")
			start, _ := strconv.ParseInt(a, 10, 64)
			end, _ := strconv.ParseInt(b, 10, 64)
			h.Set("Content-Type", "application/octet-stream")
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start+1, end+1, w.size))
			h.Del("Content-Length")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *faultWriter) Write(p []byte) (int, error) {
	n := len(p)
	switch w.fault {
	case FaultDrop:
		if w.written+int64(len(p)) > w.total/2 {
			w.ResponseWriter.Write(p[:max(w.total/2-w.written, 0)])
			w.ResponseWriter.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
	case FaultTruncate:
		p = p[:max(min(int64(len(p)), w.total-w.written), 0)]
	case FaultFlip:
		if mid := w.total / 2; w.written <= mid && mid < w.written+int64(len(p)) {
			p = append([]byte(nil), p...)
			p[mid-w.written] ^= 0x01
		}
	case FaultSlow:
		for i := range p {
			select {
			case <-w.done:
				panic(http.ErrAbortHandler)
			case <-time.After(w.slow):
			}
			if _, err := w.ResponseWriter.Write(p[i : i+1]); err != nil {
				return i, err
			}
			w.ResponseWriter.(http.Flusher).Flush()
		}
		w.written += int64(n)
		return n, nil
	}
	w.written += int64(n)
	if _, err := w.ResponseWriter.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}
