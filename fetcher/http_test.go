package fetcher_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/registrytest"
	"github.com/opencontainers/go-digest"
)

// testBlob returns n deterministic pseudo-random bytes.
func testBlob(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// fetchAll fetches ranges and returns each range's bytes by index,
// checking that fn saw every range exactly once.
func fetchAll(t *testing.T, f fetcher.Fetcher, ranges []fetcher.Range) (map[fetcher.Range][]byte, error) {
	t.Helper()
	var mu sync.Mutex
	got := map[fetcher.Range][]byte{}
	calls := map[fetcher.Range]int{}
	err := f.Fetch(context.Background(), ranges, func(r fetcher.Range, data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		got[r] = data
		calls[r]++
		return nil
	})
	if err == nil {
		want := map[fetcher.Range]int{}
		for _, r := range ranges {
			want[r]++
		}
		for r, n := range want {
			if calls[r] != n {
				t.Fatalf("range %v delivered %d times, want %d", r, calls[r], n)
			}
		}
	}
	return got, err
}

func checkBytes(t *testing.T, blob []byte, got map[fetcher.Range][]byte) {
	t.Helper()
	for r, data := range got {
		if !bytes.Equal(data, blob[r.Offset:r.End()]) {
			t.Fatalf("range %v: wrong bytes", r)
		}
	}
}

var someRanges = []fetcher.Range{
	{Offset: 0, Length: 100},
	{Offset: 50, Length: 100},     // overlaps the first
	{Offset: 200_000, Length: 10}, // far away: its own span
	{Offset: 400_000, Length: 4096},
	{Offset: 1<<20 - 1, Length: 1}, // last byte
	{Offset: 300, Length: 0},
}

// fast keeps retries quick in tests.
var fast = fetcher.WithRetry(4, time.Millisecond)

func TestHTTPRealRegistry(t *testing.T) {
	blob := testBlob(1 << 20)
	for _, tc := range []struct {
		kind string
		auth bool
	}{{"docker-registry", false}, {"docker-registry", true}, {"in-process", false}, {"in-process", true}} {
		t.Run(fmt.Sprintf("%s/basic-auth=%v", tc.kind, tc.auth), func(t *testing.T) {
			var opts []registrytest.Option
			var fopts []fetcher.HTTPOption
			if tc.auth {
				opts = append(opts, registrytest.WithBasicAuth("alice", "s3cret"))
				fopts = append(fopts, fetcher.WithCredentials("alice", "s3cret"))
			}
			var reg *registrytest.Registry
			if tc.kind == "in-process" {
				reg = registrytest.StartInProcess(t, opts...)
			} else {
				reg = registrytest.Start(t, opts...)
			}
			d := reg.PushBlob(t, "lazy/layer", blob)

			for name, policy := range map[string]fetcher.CoalescePolicy{
				"multi-range":  {MaxGap: 1024, MaxSpansPerRequest: 8},
				"single-range": {MaxGap: 1024, MaxSpansPerRequest: 1},
			} {
				t.Run(name, func(t *testing.T) {
					f, err := fetcher.NewHTTP(reg.Host+"/lazy/layer@"+d.String(),
						append(fopts, fetcher.WithPlainHTTP(), fetcher.WithCoalescing(policy), fast)...)
					if err != nil {
						t.Fatal(err)
					}
					size, err := f.Size(context.Background())
					if err != nil || size != int64(len(blob)) {
						t.Fatalf("Size = %d, %v; want %d", size, err, len(blob))
					}
					got, err := fetchAll(t, f, someRanges)
					if err != nil {
						t.Fatalf("Fetch from %s: %v", reg.Kind, err)
					}
					checkBytes(t, blob, got)
					st := f.Stats()
					if st.Ranges != int64(len(someRanges)) || st.Failures != 0 {
						t.Errorf("Stats = %+v", st)
					}
					// The ranges make 4 spans: distribution serves them in one
					// multipart answer after the HEAD.
					if reg.Kind == registrytest.KindDistribution && name == "multi-range" && st.Requests != 2 {
						t.Errorf("%d requests, want a HEAD and one multi-range GET", st.Requests)
					}
				})
			}
		})
	}
}

func TestHTTPRealRegistryWrongCredentials(t *testing.T) {
	reg := registrytest.Start(t, registrytest.WithBasicAuth("alice", "s3cret"))
	d := reg.PushBlob(t, "lazy/layer", []byte("hello"))
	f, err := fetcher.NewHTTP(reg.BlobURL("lazy/layer", d), fetcher.WithCredentials("alice", "wrong"), fast)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Size(context.Background()); !errors.Is(err, fetcher.ErrUnauthorized) {
		t.Fatalf("Size with wrong password: %v, want ErrUnauthorized", err)
	}
}

// TestHTTPFaultsRecovered checks each recoverable fault, injected into the
// first blob GET, is survived with correct bytes.
func TestHTTPFaultsRecovered(t *testing.T) {
	blob := testBlob(1 << 20)
	for _, fault := range []registrytest.Fault{
		registrytest.FaultDrop, registrytest.FaultTruncate, registrytest.Fault500,
		registrytest.Fault503, registrytest.Fault429, registrytest.FaultIgnoreRange,
		registrytest.FaultRejectMultiRange, registrytest.FaultSlow,
	} {
		for _, multi := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/multi=%v", fault, multi), func(t *testing.T) {
				srv := registrytest.NewBlobServer(t, blob, registrytest.WithSlowInterval(time.Microsecond),
					registrytest.WithFaults(func(n int, _ bool) registrytest.Fault {
						if n == 1 {
							return fault
						}
						return registrytest.NoFault
					}))
				policy := fetcher.CoalescePolicy{MaxSpansPerRequest: 1}
				if multi {
					policy.MaxSpansPerRequest = 16
				}
				f, err := fetcher.NewHTTP(srv.BlobURL(), fetcher.WithCoalescing(policy), fast)
				if err != nil {
					t.Fatal(err)
				}
				ranges := someRanges[:4]
				got, err := fetchAll(t, f, ranges)
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				checkBytes(t, blob, got)
			})
		}
	}
}

func TestHTTPBadContentRange(t *testing.T) {
	blob := testBlob(100_000)
	for _, multi := range []bool{false, true} {
		srv := registrytest.NewBlobServer(t, blob, registrytest.WithFaultRate(1, 1, registrytest.FaultBadContentRange))
		f, _ := fetcher.NewHTTP(srv.BlobURL(), fast)
		ranges := []fetcher.Range{{Offset: 10, Length: 10}}
		if multi {
			ranges = append(ranges, fetcher.Range{Offset: 90_000, Length: 5})
		}
		if _, err := fetchAll(t, f, ranges); !errors.Is(err, fetcher.ErrBadContentRange) {
			t.Errorf("multi=%v: Fetch = %v, want ErrBadContentRange", multi, err)
		}
	}
}

// TestHTTPRemembersFallbacks checks that a host which ignored ranges or
// refused multi-range is not asked for multi-range again.
func TestHTTPRemembersFallbacks(t *testing.T) {
	blob := testBlob(1 << 20)
	for _, fault := range []registrytest.Fault{registrytest.FaultIgnoreRange, registrytest.FaultRejectMultiRange} {
		t.Run(fault.String(), func(t *testing.T) {
			srv := registrytest.NewBlobServer(t, blob, registrytest.WithFaultRate(1, 1, fault))
			f, _ := fetcher.NewHTTP(srv.BlobURL(), fast)
			for i := 0; i < 3; i++ {
				got, err := fetchAll(t, f, someRanges)
				if err != nil {
					t.Fatal(err)
				}
				checkBytes(t, blob, got)
			}
			multi := 0
			for _, l := range srv.Log() {
				if strings.Contains(l.Range, ",") {
					multi++
				}
			}
			if multi != 1 {
				t.Errorf("%d multi-range requests, want 1 before the fallback is remembered", multi)
			}
		})
	}
}

func TestHTTPRedirectDropsAuthorization(t *testing.T) {
	blob := testBlob(50_000)
	for _, auth := range []string{"none", "basic", "bearer"} {
		t.Run(auth, func(t *testing.T) {
			opts := []registrytest.ServerOption{registrytest.WithRedirect()}
			switch auth {
			case "basic":
				opts = append(opts, registrytest.WithServerBasicAuth("u", "p"))
			case "bearer":
				opts = append(opts, registrytest.WithBearerAuth("u", "p"))
			}
			srv := registrytest.NewBlobServer(t, blob, opts...)
			f, _ := fetcher.NewHTTP(srv.BlobURL(), fetcher.WithCredentials("u", "p"), fetcher.WithSize(int64(len(blob))), fast)
			got, err := fetchAll(t, f, []fetcher.Range{{Offset: 5, Length: 10}, {Offset: 40_000, Length: 10}})
			if err != nil {
				t.Fatal(err)
			}
			checkBytes(t, blob, got)
			sawAuthAtRegistry := false
			for _, l := range srv.Log() {
				switch {
				case strings.HasPrefix(l.Path, "/bucket/") && l.Authorization != "":
					t.Errorf("object store received Authorization %q", l.Authorization)
				case strings.HasPrefix(l.Path, "/v2/") && l.Authorization != "":
					sawAuthAtRegistry = true
				}
			}
			if sawAuthAtRegistry != (auth != "none") {
				t.Errorf("registry saw Authorization: %v", sawAuthAtRegistry)
			}
		})
	}
}

func TestHTTPBearer(t *testing.T) {
	blob := testBlob(10_000)
	t.Run("anonymous", func(t *testing.T) {
		srv := registrytest.NewBlobServer(t, blob, registrytest.WithBearerAuth("", ""))
		f, _ := fetcher.NewHTTP(srv.BlobURL(), fast)
		got, err := fetchAll(t, f, []fetcher.Range{{Offset: 1, Length: 2}})
		if err != nil {
			t.Fatal(err)
		}
		checkBytes(t, blob, got)
	})
	t.Run("credentials", func(t *testing.T) {
		srv := registrytest.NewBlobServer(t, blob, registrytest.WithBearerAuth("bob", "pw"))
		f, _ := fetcher.NewHTTP(srv.BlobURL(), fetcher.WithCredentials("bob", "pw"), fast)
		got, err := fetchAll(t, f, []fetcher.Range{{Offset: 1, Length: 2}})
		if err != nil {
			t.Fatal(err)
		}
		checkBytes(t, blob, got)
		// The token is reused: one token fetch, one 401 in all.
		unauthorized := 0
		for _, l := range srv.Log() {
			if l.Authorization == "" {
				unauthorized++
			}
		}
		if unauthorized != 1 {
			t.Errorf("%d requests without a token, want 1", unauthorized)
		}
	})
	t.Run("missing credentials", func(t *testing.T) {
		srv := registrytest.NewBlobServer(t, blob, registrytest.WithBearerAuth("bob", "pw"))
		f, _ := fetcher.NewHTTP(srv.BlobURL(), fast)
		if _, err := f.Size(context.Background()); !errors.Is(err, fetcher.ErrUnauthorized) {
			t.Fatalf("Size = %v, want ErrUnauthorized", err)
		}
	})
}

func TestHTTPDockerConfig(t *testing.T) {
	blob := testBlob(1000)
	basic := registrytest.NewBlobServer(t, blob, registrytest.WithServerBasicAuth("carol", "pa:ss"))
	oauth := registrytest.NewBlobServer(t, blob, registrytest.WithRefreshToken("refresh-me"))
	for name, tc := range map[string]struct {
		srv   *registrytest.BlobServer
		entry string
	}{
		"auth":              {basic, `{"auth":"` + base64.StdEncoding.EncodeToString([]byte("carol:pa:ss")) + `"}`},
		"username/password": {basic, `{"username":"carol","password":"pa:ss"}`},
		"identity token":    {oauth, `{"identitytoken":"refresh-me"}`},
	} {
		t.Run(name, func(t *testing.T) {
			srv := tc.srv
			dir := writeDockerConfig(t, `{"auths":{"other.example":{"auth":"eDp5"},"`+srv.URL+`":`+tc.entry+`}}`)
			f, err := fetcher.NewHTTP(srv.BlobURL(), fetcher.WithDockerConfig(dir), fast)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fetchAll(t, f, []fetcher.Range{{Offset: 0, Length: 1000}})
			if err != nil {
				t.Fatal(err)
			}
			checkBytes(t, blob, got)
		})
	}
	if _, err := fetcher.NewHTTP(basic.BlobURL(), fetcher.WithDockerConfig(filepath.Join(t.TempDir(), "absent.json"))); err == nil {
		t.Error("NewHTTP with a missing docker config: no error")
	}
}

func TestHTTPSlowLorisTimesOut(t *testing.T) {
	blob := testBlob(10_000)
	srv := registrytest.NewBlobServer(t, blob, registrytest.WithFaultRate(1, 1, registrytest.FaultSlow),
		registrytest.WithSlowInterval(10*time.Millisecond))
	f, _ := fetcher.NewHTTP(srv.BlobURL(), fetcher.WithSize(int64(len(blob))),
		fetcher.WithRequestTimeout(100*time.Millisecond), fetcher.WithRetry(2, time.Millisecond))
	_, err := fetchAll(t, f, []fetcher.Range{{Offset: 0, Length: 5000}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch = %v, want a deadline error", err)
	}
	if st := f.Stats(); st.Retries != 1 || st.Failures != 2 {
		t.Errorf("Stats = %+v, want 1 retry and 2 failures", st)
	}
}

func TestHTTPContextCancel(t *testing.T) {
	srv := registrytest.NewBlobServer(t, testBlob(10_000), registrytest.WithFaultRate(1, 1, registrytest.FaultSlow))
	f, _ := fetcher.NewHTTP(srv.BlobURL())
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err := f.Fetch(ctx, []fetcher.Range{{Offset: 0, Length: 5000}}, func(fetcher.Range, []byte) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch = %v, want context.Canceled", err)
	}
}

// TestHTTPEndlessBody checks that a server sending more than asked, without
// end, costs no more than the asked bytes.
func TestHTTPEndlessBody(t *testing.T) {
	for _, status := range []int{http.StatusOK, http.StatusPartialContent} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead {
				w.Header().Set("Content-Length", "1000000")
				return
			}
			if status == http.StatusPartialContent {
				w.Header().Set("Content-Range", "bytes 10-19/1000000")
			}
			w.WriteHeader(status)
			chunk := bytes.Repeat([]byte{'x'}, 32<<10)
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}))
		defer srv.Close()
		f, _ := fetcher.NewHTTP(srv.URL+"/v2/a/blobs/sha256:"+strings.Repeat("0", 64), fast)
		got, err := fetchAll(t, f, []fetcher.Range{{Offset: 10, Length: 10}})
		if err != nil || string(got[fetcher.Range{Offset: 10, Length: 10}]) != "xxxxxxxxxx" {
			t.Fatalf("status %d: Fetch = %q, %v", status, got, err)
		}
	}
}

func TestHTTPSizeFallback(t *testing.T) {
	blob := testBlob(777)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			http.Error(w, "no HEAD here", http.StatusMethodNotAllowed)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	}))
	defer srv.Close()
	f, _ := fetcher.NewHTTP(srv.URL+"/v2/a/b/blobs/sha256:"+strings.Repeat("0", 64), fast)
	if n, err := f.Size(context.Background()); n != 777 || err != nil {
		t.Fatalf("Size = %d, %v; want 777", n, err)
	}
}

func TestNewHTTPRejects(t *testing.T) {
	for _, ref := range []string{
		"", "example.com/repo", "example.com/repo@sha256:abc", "https://example.com/v2/repo/manifests/x",
		"example.com/Repo@sha256:" + strings.Repeat("0", 64), "https:///v2/a/blobs/sha256:" + strings.Repeat("0", 64),
	} {
		if _, err := fetcher.NewHTTP(ref); err == nil {
			t.Errorf("NewHTTP(%q): no error", ref)
		}
	}
}

// TestHTTPRandomFaults fetches many random range sets through a server
// failing 20% of requests: every delivered range must be right and
// delivered once at most, or the fetch must fail with an error, and
// nothing may hang.
func TestHTTPRandomFaults(t *testing.T) {
	blob := testBlob(1 << 20)
	faults := []registrytest.Fault{registrytest.FaultDrop, registrytest.FaultTruncate, registrytest.Fault500,
		registrytest.Fault503, registrytest.Fault429, registrytest.FaultIgnoreRange,
		registrytest.FaultBadContentRange, registrytest.FaultRejectMultiRange, registrytest.FaultSlow}
	srv := registrytest.NewBlobServer(t, blob, registrytest.WithFaultRate(0.2, 42, faults...),
		registrytest.WithSlowInterval(time.Millisecond))
	f, _ := fetcher.NewHTTP(srv.BlobURL(), fetcher.WithRetry(5, time.Millisecond),
		fetcher.WithRequestTimeout(300*time.Millisecond), fetcher.WithMaxConnections(8))
	fetches := 300
	if testing.Short() {
		fetches = 60
	}
	const workers = 4
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(1, uint64(w)))
			for i := 0; i < fetches/workers; i++ {
				ranges := make([]fetcher.Range, 1+rng.IntN(8))
				for j := range ranges {
					n := 1 + rng.Int64N(8<<10)
					ranges[j] = fetcher.Range{Offset: rng.Int64N(int64(len(blob)) - n), Length: n}
				}
				var mu sync.Mutex
				calls, asked := map[fetcher.Range]int{}, map[fetcher.Range]int{}
				for _, r := range ranges {
					asked[r]++
				}
				err := f.Fetch(context.Background(), ranges, func(r fetcher.Range, data []byte) error {
					mu.Lock()
					calls[r]++
					n := calls[r]
					mu.Unlock()
					if n > asked[r] {
						return fmt.Errorf("range %v: delivered %d times", r, n)
					}
					if !bytes.Equal(data, blob[r.Offset:r.End()]) {
						return fmt.Errorf("range %v: wrong bytes delivered", r)
					}
					return nil
				})
				if err != nil {
					failed.Add(1)
					if !clearFetchError(err) {
						t.Errorf("worker %d fetch %d: %v", w, i, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	st := f.Stats()
	t.Logf("%d fetches, %d failed; stats %+v", fetches, failed.Load(), st)
	if st.Retries == 0 {
		t.Error("no retries under a 20% fault rate")
	}
}

// clearFetchError tells whether err is one a caller can act on: a broken
// response, or the last failure after the retries ran out.
func clearFetchError(err error) bool {
	var status *fetcher.StatusError
	var netErr net.Error
	return strings.HasPrefix(err.Error(), "fetcher: ") &&
		(errors.Is(err, fetcher.ErrBadContentRange) || errors.Is(err, fetcher.ErrBadResponse) ||
			errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) ||
			errors.As(err, &status) || errors.As(err, &netErr))
}

// TestHTTPResumesDroppedRange checks that after a connection drops
// mid-body, the retry asks only for the bytes still missing.
func TestHTTPResumesDroppedRange(t *testing.T) {
	blob := testBlob(1 << 20)
	srv := registrytest.NewBlobServer(t, blob, registrytest.WithFaults(func(n int, _ bool) registrytest.Fault {
		if n == 1 {
			return registrytest.FaultDrop
		}
		return registrytest.NoFault
	}))
	var infos []fetcher.RequestInfo
	f, _ := fetcher.NewHTTP(srv.BlobURL(), fetcher.WithSize(int64(len(blob))), fast,
		fetcher.WithObserver(func(info fetcher.RequestInfo) { infos = append(infos, info) }))
	r := fetcher.Range{Offset: 1000, Length: 500_000}
	got, err := fetchAll(t, f, []fetcher.Range{r})
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, blob, got)
	var gets []string
	for _, l := range srv.Log() {
		gets = append(gets, l.Range)
	}
	if len(gets) != 2 || gets[0] != "bytes=1000-500999" || gets[1] == gets[0] || !strings.HasSuffix(gets[1], "-500999") {
		t.Errorf("requests %q: want the retry to resume after the received bytes", gets)
	}
	if st := f.Stats(); st.Bytes != r.Length || st.Retries != 1 || st.Failures != 1 || st.Ranges != 1 {
		t.Errorf("Stats = %+v: want exactly the range's bytes received, in 2 requests", st)
	}
	if len(infos) != 2 || infos[0].Err == nil || infos[0].Attempt != 1 || infos[1].Err != nil || infos[1].Attempt != 2 ||
		infos[1].Status != http.StatusPartialContent || infos[0].Bytes+infos[1].Bytes != r.Length ||
		infos[1].Spans[0].End() != r.End() {
		t.Errorf("observed %+v", infos)
	}
}

func TestNewHTTPDockerHub(t *testing.T) {
	var seen string
	rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		seen = req.URL.String()
		return nil, errors.New("offline")
	})
	f, err := fetcher.NewHTTP("docker.io/alpine@sha256:"+strings.Repeat("0", 64), fetcher.WithTransport(rt), fetcher.WithRetry(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	f.Size(context.Background())
	if want := "https://registry-1.docker.io/v2/library/alpine/blobs/sha256:" + strings.Repeat("0", 64); seen != want {
		t.Errorf("requested %s, want %s", seen, want)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestHTTPPermanentTransportErrors(t *testing.T) {
	t.Run("redirect loop", func(t *testing.T) {
		var srv *httptest.Server
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
		}))
		defer srv.Close()
		f, _ := fetcher.NewHTTP(srv.URL+"/v2/a/blobs/sha256:"+strings.Repeat("0", 64), fetcher.WithSize(10), fast)
		_, err := fetchAll(t, f, []fetcher.Range{{Offset: 0, Length: 1}})
		if err == nil || f.Stats().Retries != 0 {
			t.Errorf("Fetch = %v after %d retries, want an error and no retry", err, f.Stats().Retries)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.NotFoundHandler())
		defer srv.Close()
		f, _ := fetcher.NewHTTP(srv.URL+"/v2/a/blobs/sha256:"+strings.Repeat("0", 64), fast)
		if _, err := f.Size(context.Background()); err == nil || f.Stats().Retries != 0 {
			t.Errorf("Size = %v after %d retries, want an error and no retry", err, f.Stats().Retries)
		}
	})
}

// TestHTTPReusesConnections checks that well-formed answers leave their
// connection reusable: sequential requests share one.
func TestHTTPReusesConnections(t *testing.T) {
	blob := testBlob(1 << 20)
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	}))
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	f, _ := fetcher.NewHTTP(srv.URL+"/v2/a/blobs/sha256:"+strings.Repeat("0", 64), fetcher.WithMaxConnections(1), fast)
	for i := range 10 {
		// Far apart, so they make a multi-range request.
		ranges := []fetcher.Range{{Offset: int64(i) * 1000, Length: 10}, {Offset: 900_000 - int64(i)*1000, Length: 10}}
		if _, err := fetchAll(t, f, ranges); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for sequential requests, want 1", n)
	}
}

// TestHTTPHonoursRetryAfter checks the wait after a 503 is at least the
// server's Retry-After even though the backoff alone would be a
// millisecond. (A lower bound only: it cannot flake on a slow machine.)
func TestHTTPHonoursRetryAfter(t *testing.T) {
	blob := testBlob(1000)
	srv := registrytest.NewBlobServer(t, blob, registrytest.WithRetryAfter("1"),
		registrytest.WithFaults(func(n int, _ bool) registrytest.Fault {
			if n == 1 {
				return registrytest.Fault503
			}
			return registrytest.NoFault
		}))
	f, _ := fetcher.NewHTTP(srv.BlobURL(), fetcher.WithSize(int64(len(blob))), fast)
	start := time.Now()
	got, err := fetchAll(t, f, []fetcher.Range{{Offset: 0, Length: 10}})
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, blob, got)
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("retried after %v, before the server's Retry-After of 1s", waited)
	}
}

// writePart writes the headers and bytes of one multipart/byteranges part
// for r, not the delimiter line before it.
func writePart(w io.Writer, blob []byte, r fetcher.Range) {
	fmt.Fprintf(w, "Content-Range: bytes %d-%d/%d\r\n\r\n", r.Offset, r.End()-1, len(blob))
	w.Write(blob[r.Offset:r.End()])
	io.WriteString(w, "\r\n")
}

// TestHTTPStreamsRanges checks that fn gets each range as soon as its
// bytes have arrived, not when the whole answer has: the server sends the
// first range, then waits for fn to have it before sending the rest.
func TestHTTPStreamsRanges(t *testing.T) {
	blob := testBlob(100_000)
	first := fetcher.Range{Offset: 1000, Length: 500}
	tests := []struct {
		name   string
		second fetcher.Range
		maxGap int64 // of the coalescing policy
		// head writes the answer up to just after first; tail the rest.
		head, tail func(w http.ResponseWriter, second fetcher.Range)
	}{{
		name:   "multipart",
		second: fetcher.Range{Offset: 60_000, Length: 700},
		head: func(w http.ResponseWriter, _ fetcher.Range) {
			w.Header().Set("Content-Type", "multipart/byteranges; boundary=B")
			w.WriteHeader(http.StatusPartialContent)
			io.WriteString(w, "--B\r\n")
			writePart(w, blob, first)
			io.WriteString(w, "--B\r\n") // ends the first part
		},
		tail: func(w http.ResponseWriter, second fetcher.Range) {
			writePart(w, blob, second)
			io.WriteString(w, "--B--\r\n")
		},
	}, {
		name:   "coalesced",
		second: fetcher.Range{Offset: first.End(), Length: 700},
		head: func(w http.ResponseWriter, second fetcher.Range) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first.Offset, second.End()-1, len(blob)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(blob[first.Offset:first.End()])
		},
		tail: func(w http.ResponseWriter, second fetcher.Range) { w.Write(blob[second.Offset:second.End()]) },
	}, {
		// One span, asked as one range, answered with the whole blob.
		name:   "whole blob",
		second: fetcher.Range{Offset: 60_000, Length: 700},
		maxGap: 1 << 20,
		head: func(w http.ResponseWriter, _ fetcher.Range) {
			w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
			w.WriteHeader(http.StatusOK)
			w.Write(blob[:first.End()])
		},
		tail: func(w http.ResponseWriter, _ fetcher.Range) { w.Write(blob[first.End():]) },
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotFirst := make(chan struct{})
			var stalled atomic.Bool
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tt.head(w, tt.second)
				w.(http.Flusher).Flush()
				select {
				case <-gotFirst:
				case <-time.After(10 * time.Second):
					stalled.Store(true)
				case <-r.Context().Done():
					return
				}
				tt.tail(w, tt.second)
			}))
			defer srv.Close()
			f, err := fetcher.NewHTTP(srv.URL+"/v2/a/blobs/sha256:"+strings.Repeat("0", 64),
				fetcher.WithSize(int64(len(blob))), fetcher.WithCoalescing(fetcher.CoalescePolicy{MaxGap: tt.maxGap}), fast)
			if err != nil {
				t.Fatal(err)
			}
			var once sync.Once
			err = f.Fetch(context.Background(), []fetcher.Range{first, tt.second}, func(r fetcher.Range, data []byte) error {
				if !bytes.Equal(data, blob[r.Offset:r.End()]) {
					return fmt.Errorf("range %v: wrong bytes", r)
				}
				if r == first {
					once.Do(func() { close(gotFirst) })
				}
				return nil
			})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if stalled.Load() {
				t.Error("fn did not get the first range until the whole answer had come")
			}
			if st := f.Stats(); st.Requests != 1 || st.Ranges != 2 {
				t.Errorf("Stats = %+v, want 2 ranges from 1 request", st)
			}
		})
	}
}

// TestHTTPDropRetriesRest checks that when the connection drops part-way
// through an answer, fn keeps the ranges it got and the retry asks only
// for the rest.
func TestHTTPDropRetriesRest(t *testing.T) {
	blob := testBlob(300_000)
	tests := []struct {
		name   string
		ranges []fetcher.Range
		maxGap int64                       // of the coalescing policy
		head   func(w http.ResponseWriter) // the first answer, up to the drop
		asks   []string
	}{{
		name:   "multipart",
		ranges: []fetcher.Range{{Offset: 0, Length: 1000}, {Offset: 100_000, Length: 1000}, {Offset: 200_000, Length: 1000}},
		head: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "multipart/byteranges; boundary=B")
			w.WriteHeader(http.StatusPartialContent)
			io.WriteString(w, "--B\r\n")
			writePart(w, blob, fetcher.Range{Offset: 0, Length: 1000})
			io.WriteString(w, "--B\r\n")
		},
		asks: []string{"bytes=0-999,100000-100999,200000-200999", "bytes=100000-100999,200000-200999"},
	}, {
		// The host ignores the range asked, one span from 0 to 50199;
		// the drop comes after the span's third range.
		name: "whole blob",
		ranges: []fetcher.Range{{Offset: 0, Length: 100}, {Offset: 100, Length: 100},
			{Offset: 50_000, Length: 100}, {Offset: 50_100, Length: 100}},
		maxGap: 1 << 20,
		head: func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
			w.WriteHeader(http.StatusOK)
			w.Write(blob[:50_150])
		},
		asks: []string{"bytes=0-50199", "bytes=50150-50199"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu   sync.Mutex
				asks []string
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				asks = append(asks, r.Header.Get("Range"))
				n := len(asks)
				mu.Unlock()
				if n > 1 {
					http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
					return
				}
				tt.head(w)
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler) // drops the connection
			}))
			defer srv.Close()
			f, _ := fetcher.NewHTTP(srv.URL+"/v2/a/blobs/sha256:"+strings.Repeat("0", 64),
				fetcher.WithSize(int64(len(blob))), fetcher.WithCoalescing(fetcher.CoalescePolicy{MaxGap: tt.maxGap}), fast)
			got, err := fetchAll(t, f, tt.ranges) // fails unless each range came exactly once
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			checkBytes(t, blob, got)
			if !slices.Equal(asks, tt.asks) {
				t.Errorf("Range headers %q, want %q", asks, tt.asks)
			}
			if st := f.Stats(); st.Ranges != int64(len(tt.ranges)) || st.Failures != 1 {
				t.Errorf("Stats = %+v, want %d ranges delivered after 1 failure", st, len(tt.ranges))
			}
		})
	}
}

// TestHTTPCallbackErrorStops checks that an error from fn ends the fetch
// as it is, without a retry, even while the answer is still streaming.
func TestHTTPCallbackErrorStops(t *testing.T) {
	blob := testBlob(100_000)
	srv := registrytest.NewBlobServer(t, blob)
	f, _ := fetcher.NewHTTP(srv.BlobURL(), fetcher.WithSize(int64(len(blob))), fast)
	errStop := errors.New("caller says stop")
	ranges := []fetcher.Range{{Offset: 0, Length: 100}, {Offset: 100, Length: 100}, {Offset: 200, Length: 100}}
	calls := 0
	err := f.Fetch(context.Background(), ranges, func(fetcher.Range, []byte) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("Fetch = %v after %d calls, want the callback's error after 1", err, calls)
	}
	if n := len(srv.Log()); n != 1 {
		t.Errorf("%d requests, want 1: a callback's error is not retried", n)
	}
}

// TestHTTPUserAgent checks that requests name lazylayer, so that registry
// operators can tell its traffic.
func TestHTTPUserAgent(t *testing.T) {
	blob := []byte("0123456789")
	var agents []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents = append(agents, r.UserAgent())
		mu.Unlock()
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	}))
	defer srv.Close()
	f, err := fetcher.NewHTTP(srv.URL + "/v2/app/blobs/" + digest.FromBytes(blob).String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Size(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.Fetch(context.Background(), []fetcher.Range{{Offset: 2, Length: 3}}, func(fetcher.Range, []byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ua := range agents {
		if !strings.HasPrefix(ua, "lazylayer/") {
			t.Errorf("User-Agent %q, want lazylayer/<version>", ua)
		}
	}
}
