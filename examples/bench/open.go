package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/lazylayer/lazylayer/convert"
	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/image/layout"
	"github.com/lazylayer/lazylayer/internal/localregistry"
	"github.com/lazylayer/lazylayer/internal/simregistry"
	"github.com/lazylayer/lazylayer/registry"
)

// open measures image.Open of the image converted with opts (to eStargz
// by default; its plan from the config, lazylayer's defaults), named
// format and tagged tag, in docker-registry behind a bearer-token gate and
// the simulated link: round trips on the critical path, token requests,
// bytes, and the time against 3 RTTs plus the bytes over the bandwidth.
func (b *imageBench) open(ctx context.Context, w io.Writer, format, tag string, opts ...convert.Option) error {
	reg, err := localregistry.Start(ctx)
	if errors.Is(err, localregistry.ErrNotInstalled) {
		fmt.Fprintf(w, "open: skipped: apt-get install docker-registry\n\n")
		return nil
	}
	if err != nil {
		return err
	}
	defer reg.Close()
	gate, err := newTokenGate(reg.URL())
	if err != nil {
		return err
	}
	defer gate.Close()
	proxy, err := simregistry.NewProxy(gate.URL(), simregistry.WithLink(b.link))
	if err != nil {
		return err
	}
	defer proxy.Close()
	gate.realm = proxy.URL() + "/token"

	// Converted straight into the registry, past the gate and the link.
	pusher, err := registry.New()
	if err != nil {
		return err
	}
	defer pusher.Close()
	src, err := layout.Open(b.src, "src")
	if err != nil {
		return err
	}
	const repo = "bench/image"
	dst, err := pusher.Repository(reg.Host() + "/" + repo + ":" + tag)
	if err != nil {
		return err
	}
	start := time.Now()
	if _, err := convert.Image(ctx, src, dst, append([]convert.Option{convert.WithTempDir(b.dir)}, opts...)...); err != nil {
		return fmt.Errorf("convert into the registry: %w", err)
	}
	b.logf("open: image converted to %s and pushed in %v", format, time.Since(start).Round(time.Millisecond))

	// The same registry without the gate, for the round trips auth
	// adds.
	anon, err := simregistry.NewProxy(reg.URL(), simregistry.WithLink(b.link))
	if err != nil {
		return err
	}
	defer anon.Close()

	fmt.Fprintf(w, "image.Open of the image converted to %s in docker-registry, over %v (a new client each run)\n", format, b.link)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "auth	run	time	requests	waves	token requests	bytes	3 RTT + bytes/bw	x that	")
	var bearer, anonymous []usage
	var logs [2]string
	for run := range b.runs {
		b.logf("open: run %d of %d", run+1, b.runs)
		for i, p := range []*simregistry.Proxy{proxy, anon} {
			g, name := gate, "bearer"
			if i == 1 {
				g, name = nil, "anonymous"
			}
			ref := strings.TrimPrefix(p.URL(), "http://") + "/" + repo + ":" + tag
			r, err := openOnce(ctx, ref, p, g)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			limit := 3*b.link.RTT + b.link.TransferTime(r.bytes)
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d %q\t%s\t%s\t%.2fx\t\n", name, run+1, formatDuration(r.wall), r.requests, r.waves, r.tokens,
				r.scopes, formatBytes(r.bytes), formatDuration(limit), float64(r.wall)/float64(limit))
			if i == 0 {
				bearer = append(bearer, usage{wall: r.wall})
			} else {
				anonymous = append(anonymous, usage{wall: r.wall})
			}
			logs[i] = r.log
		}
	}
	tw.Flush()
	wall := func(u usage) time.Duration { return u.wall }
	fmt.Fprintf(w, "  bearer: time min %s, median %s; anonymous: min %s, median %s\n", formatDuration(minOf(bearer, wall)),
		formatDuration(median(bearer, wall)), formatDuration(minOf(anonymous, wall)), formatDuration(median(anonymous, wall)))
	fmt.Fprintln(w, "  waves: requests sent while none was in flight, the round trips on the critical path")
	fmt.Fprintf(w, "  bearer requests (last run): %s\n  anonymous requests (last run): %s\n\n", logs[0], logs[1])
	return nil
}

// openResult is one image.Open.
type openResult struct {
	wall            time.Duration
	requests, waves int
	bytes           int64
	tokens          int
	scopes          []string
	log             string
}

// openOnce opens ref with a new registry client and counts the traffic
// through proxy and the token requests of gate, if not nil.
func openOnce(ctx context.Context, ref string, proxy *simregistry.Proxy, gate *tokenGate) (openResult, error) {
	tt := &timedTransport{rt: newLocalClient().Transport}
	client, err := registry.New(registry.WithTransport(tt))
	if err != nil {
		return openResult{}, err
	}
	defer client.Close()
	src, err := client.Repository(ref)
	if err != nil {
		return openResult{}, err
	}
	proxy.ResetStats()
	if gate != nil {
		gate.Reset()
	}
	start := time.Now()
	img, err := image.Open(ctx, src)
	wall := time.Since(start)
	if err != nil {
		return openResult{}, err
	}
	defer img.Close()
	if err := img.Err(); err != nil {
		return openResult{}, err
	}
	st := proxy.Stats()
	r := openResult{wall: wall, requests: st.Requests, waves: tt.waves(), bytes: st.Bytes}
	if gate != nil {
		r.tokens, r.scopes = gate.Tokens()
	}
	var steps []string
	for _, q := range st.Log {
		path := q.Path
		if i := strings.LastIndexByte(path, '/'); i >= 0 && len(path)-i > 16 {
			path = path[:i+1] + path[i+1:i+17] + "…"
		}
		steps = append(steps, fmt.Sprintf("%s %s %d", q.Method, path, q.Status))
	}
	r.log = strings.Join(steps, "; ")
	return r, nil
}

// tokenGate stands in front of a registry as a registry with bearer
// auth does: every /v2/ request without a token it issued is answered
// 401 with a challenge naming its /token endpoint (reached through the
// link, as a token server is), which hands out a token for any scope and
// counts the requests.
type tokenGate struct {
	srv   *http.Server
	url   string
	realm string // set before the first request

	mu     sync.Mutex
	tokens int
	scopes []string
}

func newTokenGate(upstream string) (*tokenGate, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := &tokenGate{url: "http://" + ln.Addr().String()}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	g.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			g.mu.Lock()
			g.tokens++
			g.scopes = append(g.scopes, r.URL.Query().Get("scope"))
			n := g.tokens
			g.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"token": fmt.Sprintf("bench-%d", n), "expires_in": 300})
			return
		}
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok || !strings.HasPrefix(tok, "bench-") {
			scope := ""
			if repo, _, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/manifests/"); ok {
				scope = fmt.Sprintf(`,scope="repository:%s:pull"`, repo)
			} else if repo, _, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/blobs/"); ok {
				scope = fmt.Sprintf(`,scope="repository:%s:pull"`, repo)
			}
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="bench"%s`, g.realm, scope))
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		r.Header.Del("Authorization")
		rp.ServeHTTP(w, r)
	})}
	go g.srv.Serve(ln)
	return g, nil
}

// URL is the gate's base URL.
func (g *tokenGate) URL() string { return g.url }

// Tokens returns the token requests since the last Reset, and the scope
// each asked for.
func (g *tokenGate) Tokens() (int, []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tokens, append([]string(nil), g.scopes...)
}

// Reset zeroes the count.
func (g *tokenGate) Reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tokens, g.scopes = 0, nil
}

// Close stops the gate.
func (g *tokenGate) Close() error { return g.srv.Close() }

// timedTransport times each request as the client sees it: from the
// request sent to its body read to the end or closed. The proxy's log
// cannot: a client may send its next request before the proxy has
// noted the last one done.
type timedTransport struct {
	rt    http.RoundTripper
	mu    sync.Mutex
	spans []simregistry.Request // Start and Duration only
}

func (t *timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	i := len(t.spans)
	t.spans = append(t.spans, simregistry.Request{Start: time.Now()})
	t.mu.Unlock()
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		t.done(i)
		return nil, err
	}
	resp.Body = &timedBody{ReadCloser: resp.Body, done: func() { t.done(i) }}
	return resp, nil
}

// done ends span i, once.
func (t *timedTransport) done(i int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := &t.spans[i]; s.Duration == 0 {
		s.Duration = max(time.Since(s.Start), 1)
	}
}

// waves counts the round trips on the client's critical path.
func (t *timedTransport) waves() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return simregistry.Stats{Log: t.spans}.Waves()
}

// timedBody calls done at its end or close.
type timedBody struct {
	io.ReadCloser
	done func()
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.done()
	}
	return n, err
}

func (b *timedBody) Close() error {
	b.done()
	return b.ReadCloser.Close()
}
