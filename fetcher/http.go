package fetcher

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lazylayer/lazylayer/internal/regauth"
	"github.com/lazylayer/lazylayer/internal/retry"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/internal/useragent"
	"github.com/opencontainers/go-digest"
)

// userAgent names lazylayer in every request; a registry.Client's
// transport replaces it with its own, which may name the program too.
var userAgent = useragent.String("")

// Defaults of the HTTP fetcher's knobs.
const (
	DefaultMaxConnections = 4
	DefaultRequestTimeout = 2 * time.Minute
	DefaultAttempts       = 5
	DefaultRetryDelay     = 200 * time.Millisecond
)

// DefaultCoalescePolicy returns what NewHTTP coalesces with unless told
// otherwise: gaps up to 64 KiB are cheaper to read than a round trip,
// whether the host serves multi-range requests or not, 16 spans keep the
// Range header short, and 16 MiB keeps one request's buffers modest.
func DefaultCoalescePolicy() CoalescePolicy {
	return CoalescePolicy{MaxGap: 64 << 10, MaxRequestSize: 16 << 20, MaxSpansPerRequest: 16, SingleRangeGap: 64 << 10}
}

// HTTP fetches ranges of one blob from an OCI distribution registry, or
// from any server that answers HTTP range requests. It is safe for
// concurrent use.
//
// It learns what each host (the registry, or the host a redirect sends
// blob requests to, such as an object store) does with range requests,
// and remembers it for its lifetime. Until a host has answered a
// multi-range request, only one is sent to it: the others, of every Fetch
// in progress, wait for its answer. A host that answers them with 400 or
// 416 (as Google Cloud Storage does) or with the whole blob (as S3 and
// many CDNs do) is then sent single ranges, up to the connection limit in
// parallel, each covering the spans at most the policy's SingleRangeGap
// apart. A whole-blob answer to a multi-range request is dropped unread;
// since such a host may ignore ranges altogether, it is sent one single
// range and other requests wait until the answer tells. A whole-blob
// answer to a single range is read once for every range of every Fetch
// waiting or in flight (those requests are aborted), and for later ranges
// it has not passed yet; each later Fetch reads the blob from its start
// up to its last range, sharing the download with those in progress.
//
// Fetch hands each range to its callback as soon as the range's bytes
// have arrived, so the caller can work on it while the rest downloads; a
// range from a multi-range (multipart) answer arrives once its whole
// part has been read and checked. A retry after a failure part-way asks
// only for bytes the callback has not had.
type HTTP struct {
	url    *url.URL
	client *http.Client
	auth   *regauth.Authenticator // nil when the transport authenticates

	transport  http.RoundTripper
	authorized bool // the transport authenticates requests itself
	hosts      *HostTable
	plainHTTP  bool
	cred       *credential
	configPath string
	conns      chan struct{} // bounds requests in flight
	maxConns   int
	policy     CoalescePolicy
	retry      retry.Policy
	timeout    time.Duration

	sizeLock chan struct{} // held while learning the size; a channel so waiting honours ctx
	size     atomic.Int64  // -1 until known

	gate *gate // what the hosts do with range requests, and the requests waiting to learn it

	recorder
}

// WithTransport sends requests through rt instead of a clone of
// http.DefaultTransport: for TLS settings, proxies, or tests.
func WithTransport(rt http.RoundTripper) HTTPOption {
	return httpOptionFunc(func(f *HTTP) { f.transport = rt })
}

// WithAuthorizedTransport sends requests through rt, which authenticates
// them itself (as package registry's transports do): the fetcher answers
// no challenge, and a 401 fails the request with ErrUnauthorized.
// Credentials given with WithCredentials or WithDockerConfig are not used.
func WithAuthorizedTransport(rt http.RoundTripper) HTTPOption {
	return httpOptionFunc(func(f *HTTP) { f.transport, f.authorized = rt, true })
}

// WithHostTable makes the fetcher start from what t says of its hosts'
// range support, and tell t what it learns, for the fetchers of other
// blobs that share t (as package registry's do).
func WithHostTable(t *HostTable) HTTPOption {
	return httpOptionFunc(func(f *HTTP) { f.hosts = t })
}

// WithPlainHTTP makes a reference (host/repo@digest) resolve to http://
// instead of https://. Blob URLs keep the scheme they name.
func WithPlainHTTP() HTTPOption { return httpOptionFunc(func(f *HTTP) { f.plainHTTP = true }) }

// WithCredentials authenticates as username with password, through a
// bearer token service or Basic auth, whichever the registry asks for.
func WithCredentials(username, password string) HTTPOption {
	return httpOptionFunc(func(f *HTTP) { f.cred = &credential{username: username, password: password} })
}

// WithDockerConfig takes credentials for the registry's host from a docker
// config.json at path, or from path/config.json if path is a directory
// (what $DOCKER_CONFIG names), as docker does: from the credential helper
// its "credHelpers" name for the host, else from its "credsStore" helper,
// else from its "auths" entry, which may hold an identity token. A helper
// (docker-credential-<name> on $PATH) runs only when the registry first
// asks for credentials. Nothing is read from the environment unless the
// caller passes it here. WithCredentials takes precedence.
func WithDockerConfig(path string) HTTPOption {
	return httpOptionFunc(func(f *HTTP) { f.configPath = path })
}

// WithMaxConnections bounds the requests in flight at once (default
// DefaultMaxConnections).
func WithMaxConnections(n int) HTTPOption {
	return httpOptionFunc(func(f *HTTP) { f.maxConns = max(n, 1) })
}

// WithRequestTimeout bounds each attempt of a request, body included
// (default DefaultRequestTimeout). A timed-out attempt is retried.
func WithRequestTimeout(d time.Duration) HTTPOption {
	return httpOptionFunc(func(f *HTTP) { f.timeout = d })
}

// WithRetry sets how many attempts a request gets (at least 1) and the
// first backoff delay, which doubles per attempt (with jitter) up to 50
// times itself. Defaults: DefaultAttempts, DefaultRetryDelay.
func WithRetry(attempts int, delay time.Duration) HTTPOption {
	return httpOptionFunc(func(f *HTTP) {
		f.retry = retry.NewPolicy(attempts, delay)
	})
}

// WithCoalescing sets how Fetch merges ranges into requests (default
// DefaultCoalescePolicy()).
func WithCoalescing(p CoalescePolicy) HTTPOption {
	return httpOptionFunc(func(f *HTTP) { f.policy = p })
}

// WithSize gives the blob's size, from its descriptor for instance, so
// that Size needs no request.
func WithSize(n int64) HTTPOption { return httpOptionFunc(func(f *HTTP) { f.size.Store(n) }) }

// referencePattern matches host[:port]/repository@algorithm:hex.
var referencePattern = regexp.MustCompile(`^([A-Za-z0-9.-]+(?::[0-9]+)?)/([a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)@(.+)$`)

// blobPathPattern matches the distribution API's blob path, under /v2/ or
// under the API root a mirror names (containerd's override_path).
var blobPathPattern = regexp.MustCompile(`^(?:/v2)?/(.+)/blobs/([^/]+)$`)

// NewHTTP returns a fetcher for the blob ref names: either a reference
// "host[:port]/repository@sha256:..." or a blob URL
// "http(s)://host/v2/<repository>/blobs/<digest>". It sends no request.
func NewHTTP(ref string, opts ...HTTPOption) (*HTTP, error) {
	f := &HTTP{
		maxConns: DefaultMaxConnections,
		policy:   DefaultCoalescePolicy(),
		retry:    retry.NewPolicy(DefaultAttempts, DefaultRetryDelay),
		timeout:  DefaultRequestTimeout,
	}
	f.size.Store(-1)
	for _, o := range opts {
		o.applyHTTP(f)
	}

	var repo, dgst string
	if strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://") {
		u, err := url.Parse(ref)
		if err != nil {
			return nil, fmt.Errorf("fetcher: blob URL %q: %w", ref, err)
		}
		m := blobPathPattern.FindStringSubmatch(u.Path)
		if m == nil || u.Host == "" {
			return nil, fmt.Errorf("fetcher: blob URL %q: not of the form http(s)://host/v2/<name>/blobs/<digest>", ref)
		}
		f.url, repo, dgst = u, m[1], m[2]
	} else {
		m := referencePattern.FindStringSubmatch(ref)
		if m == nil {
			return nil, fmt.Errorf("fetcher: reference %q: not of the form host[:port]/repository@digest", ref)
		}
		scheme := "https"
		if f.plainHTTP {
			scheme = "http"
		}
		host := m[1]
		repo, dgst = m[2], m[3]
		if host == "docker.io" || host == "index.docker.io" {
			// Docker Hub's API lives elsewhere, and official images under library/.
			host = "registry-1.docker.io"
			if !strings.Contains(repo, "/") {
				repo = "library/" + repo
			}
		}
		f.url = &url.URL{Scheme: scheme, Host: host, Path: "/v2/" + repo + "/blobs/" + dgst}
	}
	if _, err := digest.Parse(dgst); err != nil {
		return nil, fmt.Errorf("fetcher: %q: digest: %w", ref, err)
	}

	var helper *credentialHelper
	if f.cred == nil && f.configPath != "" && !f.authorized {
		cfg, err := loadDockerConfig(f.configPath)
		if err != nil {
			return nil, err
		}
		f.cred, helper = cfg.lookup(f.url.Host)
	}
	if f.transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = f.maxConns
		f.transport = t
	}
	f.gate = newGate(f.url.Host, f.hosts)
	f.conns = make(chan struct{}, f.maxConns)
	f.sizeLock = make(chan struct{}, 1)
	f.client = &http.Client{Transport: f.transport, CheckRedirect: dropAuthOffHost}
	if !f.authorized {
		f.auth = regauth.New(f.url, repo, credentialFunc(f.cred, helper),
			&http.Client{Transport: f.transport, Timeout: f.timeout})
	}
	return f, nil
}

// loadDockerConfig reads the docker config at path (a file, or a
// directory holding config.json).
func loadDockerConfig(path string) (dockerConfig, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "config.json")
	}
	file, err := os.Open(path)
	if err != nil {
		return dockerConfig{}, fmt.Errorf("fetcher: docker config: %w", err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, maxConfigSize+1))
	if err != nil {
		return dockerConfig{}, fmt.Errorf("fetcher: docker config %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return dockerConfig{}, fmt.Errorf("fetcher: docker config %s: larger than %d bytes", path, maxConfigSize)
	}
	cfg, err := parseDockerConfig(data)
	if err != nil {
		return dockerConfig{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return cfg, nil
}

// errTooManyRedirects stops a redirect loop.
var errTooManyRedirects = errors.New("stopped after 10 redirects")

// permanentTransportError tells errors a retry cannot fix: a redirect loop,
// a certificate the client refuses, a plain-HTTP server asked for HTTPS.
func permanentTransportError(err error) bool {
	var certErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	return errors.Is(err, errTooManyRedirects) || errors.Is(err, http.ErrSchemeMismatch) || errors.As(err, &certErr) ||
		errors.As(err, &unknownAuthority) || errors.As(err, &hostname)
}

// dropAuthOffHost follows up to 10 redirects and never sends the
// registry's Authorization header to another host, such as the object
// store a blob redirect points to. (net/http alone would keep it for
// subdomains.)
func dropAuthOffHost(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errTooManyRedirects
	}
	if req.URL.Host != via[0].URL.Host {
		req.Header.Del("Authorization")
	}
	return nil
}

// Size returns the blob's size, learnt from a HEAD request or, when that
// fails or gives none, from the total of a one-byte ranged GET. The size is
// remembered; failures are not.
func (f *HTTP) Size(ctx context.Context) (int64, error) {
	if n := f.size.Load(); n >= 0 {
		return n, nil
	}
	select {
	case f.sizeLock <- struct{}{}:
		defer func() { <-f.sizeLock }()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if n := f.size.Load(); n >= 0 {
		return n, nil
	}
	var size int64 = -1
	err := f.retry.Do(ctx, func(attempt int) error {
		return f.attempt(ctx, http.MethodHead, nil, attempt, func(resp *http.Response) (int64, error) {
			if resp.StatusCode != http.StatusOK {
				return 0, f.statusError(resp, http.MethodHead)
			}
			size = resp.ContentLength
			return 0, nil
		})
	})
	// Fall back on an answer without a size, or on a status saying HEAD is
	// not welcome; not on transport errors or refused credentials.
	var status *StatusError
	if err != nil && (!errors.As(err, &status) || errors.Is(err, ErrUnauthorized) || ctx.Err() != nil) {
		return 0, err
	}
	if size < 0 {
		// Some servers and proxies answer HEAD badly: ask for one byte.
		probe := []Range{{Offset: 0, Length: 1}}
		err = f.retry.Do(ctx, func(attempt int) error {
			return f.attempt(ctx, http.MethodGet, probe, attempt, func(resp *http.Response) (int64, error) {
				switch resp.StatusCode {
				case http.StatusOK:
					size = resp.ContentLength
				case http.StatusPartialContent:
					_, total, err := parseContentRange(resp.Header.Get("Content-Range"))
					if err != nil {
						return 0, err
					}
					size = total
				default:
					return 0, f.statusError(resp, http.MethodGet)
				}
				return 0, nil
			})
		})
		if err != nil {
			return 0, err
		}
		if size < 0 {
			return 0, fmt.Errorf("fetcher: %s: server tells no size: %w", f.where(), ErrBadResponse)
		}
	}
	f.size.Store(size)
	return size, nil
}

// Fetch reads ranges, merged into requests by the coalescing policy, with
// up to the connection limit in flight, and calls fn with each range's
// exact bytes. Zero-length ranges are answered without a request.
func (f *HTTP) Fetch(ctx context.Context, ranges []Range, fn func(Range, []byte) error) error {
	size, err := f.Size(ctx)
	if err != nil {
		return err
	}
	if err := checkRanges(ranges, size); err != nil {
		return err
	}
	for _, r := range ranges {
		if r.Length == 0 {
			if err := fn(r, []byte{}); err != nil {
				return err
			}
			f.delivered(1)
		}
	}
	policy := f.policy
	if f.gate.ignoresRanges() {
		// Any request returns the blob from its start: read it once, as
		// far as the last range, instead of once per request.
		policy = CoalescePolicy{MaxGap: f.policy.MaxGap}
	}
	g := newGroup(ctx, f.maxConns)
	for _, q := range Coalesce(ranges, policy) {
		d := newDelivery(f, q.Spans, ranges, fn)
		idx := make([]int, len(q.Spans))
		for i := range idx {
			idx[i] = i
		}
		g.Go(func(ctx context.Context) error { return f.fetchJob(ctx, g, d, idx, false) })
	}
	return g.Wait()
}

// errSplit ends a job whose spans are to be fetched one per request.
var errSplit = errors.New("one request per span")

// fetchJob reads the spans idx of d, in requests of the kind the gate
// decides, with retries; a retry asks only for the bytes not yet
// received. If run, the spans are read with one single-range request.
// Spans to be fetched with single ranges become jobs of g: runs of them
// merged by the policy's SingleRangeGap.
func (f *HTTP) fetchJob(ctx context.Context, g *group, d *delivery, idx []int, run bool) error {
	j := newJob(ctx, d, idx, run)
	err := f.retry.Do(ctx, func(attempt int) error {
		st := f.gate.decide(j)
		for {
			var err error
			switch st {
			case stepDone:
				return nil
			case stepSplit:
				return errSplit
			case stepWait:
				st, err = f.gate.wait(ctx, j)
			case stepStream:
				if err = <-j.done; err == nil {
					st = f.gate.decide(j)
				}
			default:
				st, err = f.get(ctx, j, st, attempt)
			}
			if err != nil {
				return err
			}
		}
	})
	if err == errSplit {
		left := j.left()
		rest := d.missing(left)
		for _, q := range Coalesce(rest, CoalescePolicy{
			MaxGap:             max(f.policy.SingleRangeGap, f.policy.MaxGap),
			MaxRequestSize:     f.policy.MaxRequestSize,
			MaxSpansPerRequest: 1,
		}) {
			run := make([]int, len(q.Spans[0].Covers))
			for k, c := range q.Spans[0].Covers {
				run[k] = left[c]
			}
			g.Go(func(ctx context.Context) error { return f.fetchJob(ctx, g, d, run, true) })
		}
		return nil
	}
	return callerError(err)
}

// get sends j's request of kind st (stepSingle, stepMulti or stepWhole),
// tells the gate what the answer says of the host's range support, and
// reads the answer. It returns j's next step.
func (f *HTTP) get(ctx context.Context, j *job, st step, attempt int) (step, error) {
	d, left := j.d, j.left()
	size := f.size.Load()
	var want []Range
	switch st {
	case stepMulti:
		for _, i := range left {
			want = append(want, d.spans[i].Range)
		}
	default: // one range, from the first unread byte to the last
		if st == stepSingle && !j.run {
			left = left[:1]
		}
		m := d.missing(left)
		want = []Range{{Offset: m[0].Offset, Length: m[len(m)-1].End() - m[0].Offset}}
	}
	ctx, abort := context.WithCancel(ctx)
	defer abort()
	f.gate.sending(j, abort)
	err := f.attempt(ctx, http.MethodGet, want, attempt, func(resp *http.Response) (int64, error) {
		host := resp.Request.URL.Host
		answered := func(a answer, s *stream) error {
			if !f.gate.answered(j, host, a, s) {
				return errAborted
			}
			return nil
		}
		switch code := resp.StatusCode; {
		case code == http.StatusOK:
			if n := resp.ContentLength; n >= 0 && n != size {
				return 0, fmt.Errorf("fetcher: %s: whole-blob answer of %d bytes for a blob of %d: %w", f.where(), n, size, ErrBadResponse)
			}
			if len(want) > 1 {
				// Hosts that answer multi-range requests with the whole
				// blob mostly serve single ranges: rather than read the
				// blob for a few of its ranges, learn which.
				if err := answered(wholeForMulti, nil); err != nil {
					return 0, err
				}
				return 0, errNoMultiRange
			}
			s := newStream(j, 0, size)
			if err := answered(wholeForRange, s); err != nil {
				return 0, err
			}
			return f.read(s, resp.Body)
		case code == http.StatusPartialContent:
			mediaType, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			if len(want) > 1 && err == nil && mediaType == "multipart/byteranges" {
				if err := answered(multiServed, nil); err != nil {
					return 0, err
				}
				return d.readMultipart(resp.Body, params["boundary"], left)
			}
			got, total, err := parseContentRange(resp.Header.Get("Content-Range"))
			if err != nil {
				return 0, err
			}
			a := rangeServed
			if len(want) > 1 {
				// One range back for several asked: kept if it is one
				// of them, and single ranges from now on.
				a = onePartServed
			}
			// (d is not read before answered: a stream may be filling it.)
			ours := slices.ContainsFunc(left, func(i int) bool { return d.spans[i].Range == got })
			if a == rangeServed && got != want[0] || a == onePartServed && !ours || total >= 0 && total != size {
				return 0, fmt.Errorf("fetcher: %s: asked for bytes %q, got Content-Range %q: %w",
					f.where(), untrusted.Short(rangeHeader(want)), untrusted.Short(resp.Header.Get("Content-Range")), ErrBadContentRange)
			}
			s := newStream(j, got.Offset, got.End())
			if err := answered(a, s); err != nil {
				return 0, err
			}
			return f.read(s, resp.Body)
		case len(want) > 1 && (code == http.StatusBadRequest || code == http.StatusRequestedRangeNotSatisfiable):
			if err := answered(multiRejected, nil); err != nil {
				return 0, err
			}
			return 0, errNoMultiRange
		}
		return 0, f.statusError(resp, http.MethodGet)
	})
	dropped := errors.Is(err, errNoMultiRange)
	switch next := f.gate.settle(j, dropped); {
	case next == stepStream: // aborted: another answer serves j
		return next, nil
	case dropped:
		return next, nil
	case err != nil:
		return stepNone, err
	}
	return f.gate.decide(j), nil
}

// bodyError reports a body that ended or broke before r was read; it is
// worth retrying.
func bodyError(f *HTTP, r Range, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return retry.Mark(fmt.Errorf("fetcher: %s: reading bytes %v: %w", f.where(), r, err), 0)
}

// errNoMultiRange reports an answer to a multi-range request that serves
// none of its ranges: the host does not do multi-range.
var errNoMultiRange = errors.New("multi-range not supported")

// errAborted reports a request aborted because another's whole-blob
// answer serves its ranges.
var errAborted = errors.New("served by another request's whole-blob answer")

// drainLimit is how much of a response's unread rest is read to keep its
// connection for reuse.
const drainLimit = 4 << 10

// attempt sends one request for spans (nil: no Range header), answering
// an auth challenge once on the way, and lets read handle the response
// while it holds a connection slot and the attempt's deadline. It records
// the request in the statistics.
func (f *HTTP) attempt(ctx context.Context, method string, spans []Range, attempt int, read func(*http.Response) (int64, error)) error {
	select {
	case f.conns <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-f.conns }()
	actx, cancel := ctx, context.CancelFunc(func() {})
	if f.timeout > 0 {
		actx, cancel = context.WithTimeout(ctx, f.timeout)
	}
	defer cancel()

	start := time.Now()
	info := RequestInfo{Spans: spans, Attempt: attempt}
	resp, err := f.send(actx, method, spans)
	if err == nil {
		info.Status = resp.StatusCode
		info.Bytes, err = read(resp)
		if err == nil {
			// Reaching EOF lets the transport reuse the connection; a body
			// longer than this is dropped with it.
			io.CopyN(io.Discard, resp.Body, drainLimit)
		}
		resp.Body.Close()
	}
	var stop *callbackError
	if err != nil && ctx.Err() == nil && actx.Err() != nil && !errors.As(err, &stop) {
		err = retry.Mark(fmt.Errorf("%w (attempt timeout %v)", err, f.timeout), 0)
	}
	info.Latency, info.Err = time.Since(start), err
	f.request(info)
	return err
}

// send does one HTTP exchange. On a 401 from the registry it answers the
// challenge and tries once more.
func (f *HTTP) send(ctx context.Context, method string, spans []Range) (*http.Response, error) {
	for try := 0; ; try++ {
		req, err := http.NewRequestWithContext(ctx, method, f.url.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("fetcher: %w", err)
		}
		req.Header.Set("User-Agent", userAgent)
		if spans != nil {
			req.Header.Set("Range", rangeHeader(spans))
		}
		var used string
		if f.auth != nil {
			used = f.auth.Current()
		}
		if used != "" {
			req.Header.Set("Authorization", used)
		}
		resp, err := f.client.Do(req)
		if err != nil {
			err = fmt.Errorf("fetcher: %s %s: %w", method, f.where(), err)
			if errors.Is(err, http.ErrSchemeMismatch) {
				err = fmt.Errorf("%w (the registry speaks plain HTTP: see WithPlainHTTP)", err)
			}
			if ctx.Err() != nil || permanentTransportError(err) || errors.Is(err, ErrUnauthorized) {
				return nil, err
			}
			return nil, retry.Mark(err, 0)
		}
		if f.auth == nil || resp.StatusCode != http.StatusUnauthorized || try > 0 || resp.Request.URL.Host != f.url.Host {
			return resp, nil
		}
		io.CopyN(io.Discard, resp.Body, 4<<10) // let the connection be reused
		resp.Body.Close()
		if err := f.auth.Refresh(ctx, resp, used); err != nil {
			return nil, fmt.Errorf("fetcher: %w", err)
		}
	}
}

// statusError describes an unexpected status, retryable when it says so.
func (f *HTTP) statusError(resp *http.Response, method string) error {
	status := NewStatusError(resp)
	err := fmt.Errorf("fetcher: %w", status)
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: %w", err, ErrUnauthorized)
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("%w: %w", err, ErrRange)
	case resp.StatusCode == http.StatusNotFound || status.RegistryCode == "BLOB_UNKNOWN":
		return fmt.Errorf("%w: %w", err, ErrBlobUnknown)
	}
	return retry.Status(resp, err)
}

// where names the blob in error messages.
func (f *HTTP) where() string { return f.url.Host + f.url.Path }

// group runs functions on at most limit goroutines, queueing the rest,
// and returns the first error, cancelling the functions still to run.
// Functions may add more functions while it runs; Go never blocks, so a
// function adding work cannot deadlock. Bounding the goroutines bounds the
// buffers in flight to about limit requests' worth.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	limit  int
	wg     sync.WaitGroup

	mu      sync.Mutex
	running int
	queue   []func(context.Context) error
	err     error
}

func newGroup(ctx context.Context, limit int) *group {
	g := &group{limit: max(limit, 1)}
	g.ctx, g.cancel = context.WithCancel(ctx)
	return g
}

func (g *group) Go(fn func(ctx context.Context) error) {
	g.wg.Add(1)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running < g.limit {
		g.running++
		go g.work(fn)
		return
	}
	g.queue = append(g.queue, fn)
}

// work runs fn, then queued functions until the queue is empty.
func (g *group) work(fn func(context.Context) error) {
	for {
		if g.ctx.Err() == nil {
			if err := fn(g.ctx); err != nil {
				g.mu.Lock()
				if g.err == nil {
					g.err = err
					g.cancel()
				}
				g.mu.Unlock()
			}
		}
		g.wg.Done()
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		fn, g.queue = g.queue[0], g.queue[1:]
		g.mu.Unlock()
	}
}

// Wait waits for all functions and returns the first error, or the
// context's error if it ended before all of them ran.
func (g *group) Wait() error {
	g.wg.Wait()
	err := g.err
	if err == nil {
		err = g.ctx.Err()
	}
	g.cancel()
	return err
}
