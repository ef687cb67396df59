package simregistry

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// testBlob is 100 KiB of a non-repeating pattern, so any misplaced byte
// shows.
var testBlob = func() []byte {
	b := make([]byte, 100<<10)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}()

func newTestServer(t *testing.T, opts ...Option) (*Server, digest.Digest) {
	t.Helper()
	s, err := NewServer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, s.AddBlob("library/app", testBlob)
}

func do(t *testing.T, method, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestPing(t *testing.T) {
	s, _ := newTestServer(t)
	resp, _ := do(t, "GET", s.URL()+"/v2/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/: status %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get("Docker-Distribution-API-Version"); got != "registry/2.0" {
		t.Errorf("API version header %q", got)
	}
}

func TestBlobWhole(t *testing.T) {
	s, d := newTestServer(t)
	resp, body := do(t, "GET", s.BlobURL("library/app", d))
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, testBlob) {
		t.Fatalf("GET blob: status %d, %d bytes; want 200 and the blob", resp.StatusCode, len(body))
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
		t.Errorf("Docker-Content-Digest %q, want %q", got, d)
	}

	resp, body = do(t, "HEAD", s.BlobURL("library/app", d))
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(testBlob)) {
		t.Errorf("HEAD blob: status %d, body %d bytes, length %d", resp.StatusCode, len(body), resp.ContentLength)
	}
	if got := resp.Header.Get("Accept-Ranges"); got != "bytes" {
		t.Errorf("Accept-Ranges %q, want bytes", got)
	}
}

func TestBlobSingleRange(t *testing.T) {
	s, d := newTestServer(t)
	for _, tc := range []struct {
		spec        string
		first, last int
	}{
		{"bytes=0-0", 0, 0},
		{"bytes=1000-1999", 1000, 1999},
		{"bytes=100000-", 100000, len(testBlob) - 1},
		{"bytes=-10", len(testBlob) - 10, len(testBlob) - 1},
		{"bytes=102000-999999", 102000, len(testBlob) - 1}, // clipped at the end
	} {
		resp, body := do(t, "GET", s.BlobURL("library/app", d), "Range", tc.spec)
		if resp.StatusCode != http.StatusPartialContent {
			t.Errorf("%s: status %d, want 206", tc.spec, resp.StatusCode)
			continue
		}
		wantCR := fmt.Sprintf("bytes %d-%d/%d", tc.first, tc.last, len(testBlob))
		if got := resp.Header.Get("Content-Range"); got != wantCR {
			t.Errorf("%s: Content-Range %q, want %q", tc.spec, got, wantCR)
		}
		if !bytes.Equal(body, testBlob[tc.first:tc.last+1]) {
			t.Errorf("%s: wrong body of %d bytes", tc.spec, len(body))
		}
	}
}

func TestBlobMultiRange(t *testing.T) {
	s, d := newTestServer(t)
	ranges := [][2]int{{0, 99}, {50000, 50999}, {len(testBlob) - 5, len(testBlob) - 1}}
	var spec []string
	for _, r := range ranges {
		spec = append(spec, fmt.Sprintf("%d-%d", r[0], r[1]))
	}
	resp, body := do(t, "GET", s.BlobURL("library/app", d), "Range", "bytes="+strings.Join(spec, ","))
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("status %d, want 206", resp.StatusCode)
	}
	mediaType, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/byteranges" {
		t.Fatalf("Content-Type %q (%v), want multipart/byteranges", resp.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for i, r := range ranges {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		wantCR := fmt.Sprintf("bytes %d-%d/%d", r[0], r[1], len(testBlob))
		if got := part.Header.Get("Content-Range"); got != wantCR {
			t.Errorf("part %d: Content-Range %q, want %q", i, got, wantCR)
		}
		data, err := io.ReadAll(part)
		if err != nil || !bytes.Equal(data, testBlob[r[0]:r[1]+1]) {
			t.Errorf("part %d: wrong data (%d bytes, %v)", i, len(data), err)
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("after the last range: %v, want io.EOF", err)
	}
}

func TestBlobWithoutMultiRange(t *testing.T) {
	upstream, d := newTestServer(t)
	proxy, err := NewProxy(upstream.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	for _, front := range []struct {
		name string
		url  string
		set  func(MultiRange)
	}{
		{"server", upstream.URL(), upstream.SetMultiRange},
		{"proxy", proxy.URL(), proxy.SetMultiRange},
	} {
		url := BlobURL(front.url, "library/app", d)
		front.set(MultiRangeWhole)
		resp, body := do(t, "GET", url, "Range", "bytes=0-9,100-109")
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, testBlob) {
			t.Errorf("%s, single: multi-range: status %d, %d bytes; want 200 and the whole blob", front.name, resp.StatusCode, len(body))
		}
		front.set(MultiRangeReject)
		if resp, _ := do(t, "GET", url, "Range", "bytes=0-9,100-109"); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s, reject: multi-range: status %d, want 400", front.name, resp.StatusCode)
		}
		resp, body = do(t, "GET", url, "Range", "bytes=10-19")
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, testBlob[10:20]) {
			t.Errorf("%s, reject: single range: status %d, %d bytes; want 206 and 10 bytes", front.name, resp.StatusCode, len(body))
		}
		front.set(MultiRangeServe)
	}
	s, d := newTestServer(t, WithoutMultiRange())
	if resp, _ := do(t, "GET", s.BlobURL("library/app", d), "Range", "bytes=0-9,100-109"); resp.StatusCode != http.StatusOK {
		t.Errorf("WithoutMultiRange: multi-range: status %d, want 200", resp.StatusCode)
	}
	for _, m := range []MultiRange{MultiRangeServe, MultiRangeWhole, MultiRangeReject} {
		if got, err := ParseMultiRange(m.String()); got != m || err != nil {
			t.Errorf("ParseMultiRange(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseMultiRange("some"); err == nil {
		t.Error("ParseMultiRange accepted a name it does not know")
	}
}

func TestBlobErrors(t *testing.T) {
	s, d := newTestServer(t)
	unknown := digest.FromString("nothing")
	for _, tc := range []struct {
		name, method, url string
		header            []string
		status            int
	}{
		{"range past end", "GET", s.BlobURL("library/app", d), []string{"Range", fmt.Sprintf("bytes=%d-", len(testBlob))}, http.StatusRequestedRangeNotSatisfiable},
		{"malformed range", "GET", s.BlobURL("library/app", d), []string{"Range", "bytes=9-1"}, http.StatusRequestedRangeNotSatisfiable},
		{"unknown blob", "GET", s.BlobURL("library/app", unknown), nil, http.StatusNotFound},
		{"unknown repository", "GET", s.BlobURL("other", d), nil, http.StatusNotFound},
		{"bad digest", "GET", s.URL() + "/v2/library/app/blobs/sha256:xyz", nil, http.StatusBadRequest},
		{"not the blob API", "GET", s.URL() + "/v2/library/app/manifests/latest", nil, http.StatusNotFound},
		{"outside /v2/", "GET", s.URL() + "/metrics", nil, http.StatusNotFound},
		{"upload", "POST", s.URL() + "/v2/library/app/blobs/uploads/", nil, http.StatusMethodNotAllowed},
	} {
		resp, _ := do(t, tc.method, tc.url, tc.header...)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
	resp, _ := do(t, "GET", s.BlobURL("library/app", d), "Range", fmt.Sprintf("bytes=%d-", len(testBlob)))
	if got, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes */%d", len(testBlob)); got != want {
		t.Errorf("416 Content-Range %q, want %q", got, want)
	}
}

func TestStats(t *testing.T) {
	s, d := newTestServer(t)
	url := s.BlobURL("library/app", d)
	do(t, "GET", url)
	do(t, "GET", url, "Range", "bytes=0-99")
	do(t, "HEAD", url)
	st := s.Stats()
	if st.Requests != 3 || st.Bytes != int64(len(testBlob))+100 {
		t.Fatalf("Stats: %d requests, %d bytes; want 3 and %d", st.Requests, st.Bytes, len(testBlob)+100)
	}
	if len(st.Log) != 3 || st.Log[1].Range != "bytes=0-99" || st.Log[1].Status != http.StatusPartialContent || st.Log[1].Bytes != 100 || st.Log[2].Method != "HEAD" {
		t.Errorf("Log: %+v", st.Log)
	}
	s.ResetStats()
	if st := s.Stats(); st.Requests != 0 || st.Bytes != 0 || len(st.Log) != 0 {
		t.Errorf("after ResetStats: %+v", st)
	}
}

// TestConcurrentShaped runs parallel range requests over a shaped link and
// checks every body and the totals; under -race it also checks the shared
// pipe's locking.
func TestConcurrentShaped(t *testing.T) {
	s, d := newTestServer(t, WithLink(Link{RTT: time.Millisecond, Bandwidth: 100e6}))
	url := s.BlobURL("library/app", d)
	const workers, each = 8, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				off := (w*each + i) * 3000
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+2999))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || !bytes.Equal(body, testBlob[off:off+3000]) {
					errs <- fmt.Errorf("range at %d: wrong body (%v)", off, err)
				}
				_ = s.Stats() // read stats while others write them
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := s.Stats(); st.Requests != workers*each || st.Bytes != workers*each*3000 {
		t.Errorf("Stats: %d requests, %d bytes; want %d and %d", st.Requests, st.Bytes, workers*each, workers*each*3000)
	}
}

func TestFault(t *testing.T) {
	calls := 0
	s, d := newTestServer(t, WithFault(func(r *http.Request) int {
		calls++ // requests are sequential in this test
		if calls == 1 {
			return http.StatusServiceUnavailable
		}
		return 0
	}))
	resp, body := do(t, "GET", s.BlobURL("library/app", d))
	if resp.StatusCode != http.StatusServiceUnavailable || len(body) != 0 {
		t.Errorf("first request: status %d, %d bytes; want 503 and none", resp.StatusCode, len(body))
	}
	resp, body = do(t, "GET", s.BlobURL("library/app", d))
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, testBlob) {
		t.Errorf("second request: status %d, %d bytes; want 200 and the blob", resp.StatusCode, len(body))
	}
	if st := s.Stats(); st.Requests != 2 || st.Log[0].Status != http.StatusServiceUnavailable {
		t.Errorf("Stats: %+v", st)
	}
}

func TestProxy(t *testing.T) {
	upstream, d := newTestServer(t)
	p, err := NewProxy(upstream.URL(), WithRTT(time.Millisecond), WithBandwidth(1e9))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	url := BlobURL(p.URL(), "library/app", d)
	resp, body := do(t, "GET", url, "Range", "bytes=10-19,30-39")
	if resp.StatusCode != http.StatusPartialContent || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") {
		t.Errorf("multi-range through proxy: status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, body = do(t, "GET", url, "Range", "bytes=10-19")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, testBlob[10:20]) {
		t.Errorf("range through proxy: status %d, body %q", resp.StatusCode, body)
	}
	if st := p.Stats(); st.Requests != 2 || st.Log[1].Bytes != 10 {
		t.Errorf("proxy Stats: %+v", st)
	}

	if _, err := NewProxy("127.0.0.1:5000"); err == nil {
		t.Error("NewProxy accepted an upstream without a scheme")
	}
}
