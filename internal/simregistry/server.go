package simregistry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
)

// An Option configures a Server or a Proxy.
type Option func(*config)

type config struct {
	link       Link
	fault      FaultFunc
	multiRange MultiRange
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithLink puts the server behind link. The default is the zero Link: no
// latency, no bandwidth cap.
func WithLink(link Link) Option { return func(c *config) { c.link = link } }

// WithRTT sets the link's round-trip time.
func WithRTT(rtt time.Duration) Option { return func(c *config) { c.link.RTT = rtt } }

// WithBandwidth sets the link's shared bandwidth in bytes per second; zero
// means unlimited.
func WithBandwidth(bytesPerSecond float64) Option {
	return func(c *config) { c.link.Bandwidth = bytesPerSecond }
}

// WithFault installs f, which may fail any request with a status of its
// choosing; see FaultFunc.
func WithFault(f FaultFunc) Option { return func(c *config) { c.fault = f } }

// MultiRange is how a Server or Proxy answers a request for several
// ranges. Single ranges are served either way.
type MultiRange int32

const (
	// MultiRangeServe answers with what the blob store answers: a
	// multipart/byteranges 206 from a Server.
	MultiRangeServe MultiRange = iota
	// MultiRangeWhole answers with the whole blob (200), as S3 and many
	// CDNs do: the Range header is dropped.
	MultiRangeWhole
	// MultiRangeReject answers 400 Bad Request, as Google Cloud Storage
	// does.
	MultiRangeReject
)

var multiRangeNames = [...]string{"multi", "single", "reject"}

// String returns "multi", "single" or "reject": what the registry does
// with a request for several ranges, as ParseMultiRange reads it.
func (m MultiRange) String() string {
	if m >= 0 && int(m) < len(multiRangeNames) {
		return multiRangeNames[m]
	}
	return fmt.Sprintf("MultiRange(%d)", int32(m))
}

// ParseMultiRange reads a MultiRange's String.
func ParseMultiRange(s string) (MultiRange, error) {
	for i, name := range multiRangeNames {
		if s == name {
			return MultiRange(i), nil
		}
	}
	return 0, fmt.Errorf("simregistry: multi-range behaviour %q: want multi, single or reject", s)
}

// WithMultiRange sets how requests for several ranges are answered; the
// default is MultiRangeServe. SetMultiRange changes it later.
func WithMultiRange(m MultiRange) Option { return func(c *config) { c.multiRange = m } }

// WithoutMultiRange is WithMultiRange(MultiRangeWhole).
func WithoutMultiRange() Option { return WithMultiRange(MultiRangeWhole) }

// listener is the loopback HTTP server common to Server and Proxy.
type listener struct {
	shaper     *shaper
	srv        *http.Server
	url        string
	done       chan struct{}
	multiRange atomic.Int32 // a MultiRange
}

func listen(h http.Handler, c config) (*listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("simregistry: listen on loopback: %w", err)
	}
	s := &shaper{link: c.link, fault: c.fault}
	l := &listener{
		shaper: s,
		url:    "http://" + ln.Addr().String(),
		done:   make(chan struct{}),
	}
	l.multiRange.Store(int32(c.multiRange))
	l.srv = &http.Server{Handler: s.wrap(l.ranges(h)), ReadHeaderTimeout: time.Minute}
	go func() {
		defer close(l.done)
		l.srv.Serve(ln) // returns http.ErrServerClosed on Close
	}()
	return l, nil
}

// ranges wraps h so that requests for several ranges are answered as
// the listener's MultiRange says.
func (l *listener) ranges(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Range"), ",") {
			switch MultiRange(l.multiRange.Load()) {
			case MultiRangeWhole:
				r.Header.Del("Range")
			case MultiRangeReject:
				writeError(w, http.StatusBadRequest, "RANGE_INVALID", "multiple ranges are not supported")
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func (l *listener) close() error {
	err := l.srv.Close()
	<-l.done
	return err
}

// Server is an OCI distribution registry on loopback that serves blobs
// from memory behind a simulated link. It answers:
//
//   - GET /v2/ (the API version check) with 200;
//   - HEAD and GET /v2/<name>/blobs/<digest>, with single Range requests
//     (206 and Content-Range), multi-range requests (206 and
//     multipart/byteranges) and 416 for unsatisfiable ranges;
//   - 404 with an OCI error body for unknown blobs and repositories.
//
// Ranges are served by http.ServeContent, as docker-registry's filesystem
// driver serves them: in particular, a multi-range request whose ranges
// add up to more than the blob gets the whole blob with 200. WithMultiRange
// makes it answer multi-range requests as object stores do.
//
// A Server is safe for concurrent use.
type Server struct {
	l *listener

	mu    sync.RWMutex
	blobs map[string]map[digest.Digest][]byte // repository -> digest -> blob
}

// NewServer starts a Server on a free port of 127.0.0.1. Close it when
// done.
func NewServer(opts ...Option) (*Server, error) {
	c := newConfig(opts)
	s := &Server{blobs: make(map[string]map[digest.Digest][]byte)}
	l, err := listen(http.HandlerFunc(s.serve), c)
	if err != nil {
		return nil, err
	}
	s.l = l
	return s, nil
}

// URL returns the server's base URL, "http://127.0.0.1:port".
func (s *Server) URL() string { return s.l.url }

// Host returns the server's "127.0.0.1:port", as an image reference needs.
func (s *Server) Host() string { return strings.TrimPrefix(s.l.url, "http://") }

// AddBlob stores data as a blob of repository repo and returns its
// sha256 digest. The server keeps data without copying it; the caller
// must not modify it afterwards.
func (s *Server) AddBlob(repo string, data []byte) digest.Digest {
	d := digest.FromBytes(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blobs[repo] == nil {
		s.blobs[repo] = make(map[digest.Digest][]byte)
	}
	s.blobs[repo][d] = data
	return d
}

// BlobURL returns the URL of blob d in repository repo.
func (s *Server) BlobURL(repo string, d digest.Digest) string {
	return BlobURL(s.l.url, repo, d)
}

// Stats returns the traffic since the server started or since the last
// ResetStats.
func (s *Server) Stats() Stats { return s.l.shaper.snapshot() }

// ResetStats sets all counters to zero and empties the request log.
func (s *Server) ResetStats() { s.l.shaper.reset() }

// SetMultiRange changes how requests for several ranges are answered,
// from the next request on.
func (s *Server) SetMultiRange(m MultiRange) { s.l.multiRange.Store(int32(m)) }

// Close stops the server and closes every open connection.
func (s *Server) Close() error { return s.l.close() }

// BlobURL returns the URL of blob d of repository repo on the registry at
// base ("http://host:port").
func BlobURL(base, repo string, d digest.Digest) string {
	return strings.TrimSuffix(base, "/") + "/v2/" + repo + "/blobs/" + d.String()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this registry is read-only")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v2/")
	if r.URL.Path == "/v2" || ok && rest == "" {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
		return
	}
	i := strings.LastIndex(rest, "/blobs/")
	if !ok || i <= 0 {
		writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "no such endpoint")
		return
	}
	repo, ref := rest[:i], rest[i+len("/blobs/"):]
	d, err := digest.Parse(ref)
	if err != nil {
		writeError(w, http.StatusBadRequest, "DIGEST_INVALID", err.Error())
		return
	}
	s.mu.RLock()
	data, found := s.blobs[repo][d]
	s.mu.RUnlock()
	if !found {
		writeError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to registry")
		return
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+d.String()+`"`)
	// ServeContent implements HEAD, single and multi-range requests, 416
	// and If-Range exactly as Go's file server does, which is also what
	// docker-registry's filesystem driver answers with.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// writeError sends an error in the OCI distribution format.
func writeError(w http.ResponseWriter, status int, code, message string) {
	type ociError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	body, _ := json.Marshal(struct {
		Errors []ociError `json:"errors"`
	}{[]ociError{{code, message}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// Proxy puts a simulated link in front of a real registry on this machine:
// every request pays the link's round trip and every response body shares
// its bandwidth, exactly as with a Server. A Proxy is safe for concurrent
// use.
type Proxy struct {
	l *listener
}

// NewProxy starts a Proxy to upstream ("http://127.0.0.1:5000") on a free
// port of 127.0.0.1. Close it when done. Under MultiRangeServe, the
// default, the upstream answers multi-range requests as it does;
// otherwise the proxy drops their Range header or answers 400 itself.
func NewProxy(upstream string, opts ...Option) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("simregistry: proxy upstream %q: %w", upstream, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("simregistry: proxy upstream %q: want http://host:port", upstream)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	// Enough idle upstream connections for a parallel fetcher, and no
	// proxy from the environment: the upstream is on this machine.
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	// An upstream's broken body reaches the client as a broken body; the
	// proxy has nothing to add on stderr.
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if errors.Is(err, context.Canceled) {
			return
		}
		writeError(w, http.StatusBadGateway, "UNAVAILABLE", err.Error())
	}
	l, err := listen(rp, newConfig(opts))
	if err != nil {
		return nil, err
	}
	return &Proxy{l: l}, nil
}

// URL returns the proxy's base URL, "http://127.0.0.1:port".
func (p *Proxy) URL() string { return p.l.url }

// Stats returns the traffic since the proxy started or since the last
// ResetStats.
func (p *Proxy) Stats() Stats { return p.l.shaper.snapshot() }

// ResetStats sets all counters to zero and empties the request log.
func (p *Proxy) ResetStats() { p.l.shaper.reset() }

// SetMultiRange changes how requests for several ranges are answered,
// from the next request on.
func (p *Proxy) SetMultiRange(m MultiRange) { p.l.multiRange.Store(int32(m)) }

// Close stops the proxy and closes every open connection.
func (p *Proxy) Close() error { return p.l.close() }
