package registry_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/lazylayer/lazylayer/internal/registrytest"
	"github.com/lazylayer/lazylayer/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// faultyProxy stands between a client and Debian's docker-registry, whose
// upload sessions report what they hold, and fails PATCH requests as fail
// says: before forwarding (the registry never sees the chunk) or after
// (the chunk landed, the answer was lost). It counts the PATCH bytes the
// registry received.
type faultyProxy struct {
	*httptest.Server
	mu      sync.Mutex
	patches int
	sent    int64
	fail    func(patch int) (before, after bool)
}

func newFaultyProxy(t *testing.T) *faultyProxy {
	reg := registrytest.Start(t)
	if reg.Kind != registrytest.KindDistribution {
		t.Skip("resuming an upload needs a registry that reports an upload's progress: apt-get install docker-registry")
	}
	target, _ := url.Parse(reg.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &faultyProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPatch {
			rp.ServeHTTP(w, r)
			return
		}
		p.mu.Lock()
		p.patches++
		before, after := false, false
		if p.fail != nil {
			before, after = p.fail(p.patches)
		}
		p.mu.Unlock()
		if before {
			io.Copy(io.Discard, r.Body)
			http.Error(w, `{"errors":[{"code":"UNKNOWN","message":"try again"}]}`, http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.sent += int64(len(body))
		p.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if after {
			rp.ServeHTTP(httptest.NewRecorder(), r)
			http.Error(w, "lost", http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *faultyProxy) host() string { return strings.TrimPrefix(p.URL, "http://") }

func (p *faultyProxy) setFail(fn func(patch int) (before, after bool)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail, p.sent = fn, 0
}

func (p *faultyProxy) sentBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// TestPushResumes checks that a chunk that fails is sent again from
// where the registry stands, within one PushBlob, and that a PushBlob
// that gave up is resumed by the next one: in every case the registry
// receives each byte about once.
func TestPushResumes(t *testing.T) {
	const chunk = 64 << 10
	layer := randomBytes(10*chunk+123, 7)
	ctx := context.Background()
	t.Run("chunk refused", func(t *testing.T) {
		p := newFaultyProxy(t)
		r := repository(t, newClient(t, registry.WithChunkSize(chunk)), p.host()+"/resume/refused")
		desc := blobDesc(ocispec.MediaTypeImageLayer, layer)
		p.setFail(func(n int) (bool, bool) { return n == 4, false })
		if err := r.PushBlob(ctx, desc, bytes.NewReader(layer)); err != nil {
			t.Fatalf("PushBlob through one refused chunk: %v", err)
		}
		if sent := p.sentBytes(); sent != int64(len(layer)) {
			t.Errorf("the registry received %d bytes for a %d-byte blob", sent, len(layer))
		}
		f, _ := r.Blob(ctx, desc)
		if got := readBlob(t, f); !bytes.Equal(got, layer) {
			t.Fatal("the blob reads back wrong")
		}
	})

	// distribution's session tokens change with every chunk, so after an
	// answer is lost the session cannot be asked where it stands: the
	// push fails, cleanly, and the next one starts over.
	t.Run("answer lost", func(t *testing.T) {
		p := newFaultyProxy(t)
		r := repository(t, newClient(t, registry.WithChunkSize(chunk)), p.host()+"/resume/lost")
		desc := blobDesc(ocispec.MediaTypeImageLayer, layer)
		p.setFail(func(n int) (bool, bool) { return false, n == 4 })
		if err := r.PushBlob(ctx, desc, bytes.NewReader(layer)); err != nil {
			if has, _ := r.Has(ctx, desc); has {
				t.Fatal("a blob whose push failed is present")
			}
			p.setFail(nil)
			if err := r.PushBlob(ctx, desc, bytes.NewReader(layer)); err != nil {
				t.Fatalf("PushBlob again: %v", err)
			}
		}
		f, _ := r.Blob(ctx, desc)
		if got := readBlob(t, f); !bytes.Equal(got, layer) {
			t.Fatal("the blob reads back wrong")
		}
	})

	t.Run("resumed by the next push", func(t *testing.T) {
		p := newFaultyProxy(t)
		r := repository(t, newClient(t, registry.WithChunkSize(chunk)), p.host()+"/resume/later")
		desc := blobDesc(ocispec.MediaTypeImageLayer, layer)
		p.setFail(func(n int) (bool, bool) { return n >= 6, false }) // the registry is gone after five chunks
		if err := r.PushBlob(ctx, desc, bytes.NewReader(layer)); err == nil {
			t.Fatal("PushBlob through a registry that fails every chunk after the fifth: no error")
		}
		if has, _ := r.Has(ctx, desc); has {
			t.Fatal("a blob whose push failed is present")
		}
		p.setFail(nil)
		if err := r.PushBlob(ctx, desc, bytes.NewReader(layer)); err != nil {
			t.Fatalf("PushBlob again: %v", err)
		}
		if sent, rest := p.sentBytes(), int64(len(layer)-5*chunk); sent != rest {
			t.Errorf("the second push sent %d bytes; the registry lacked %d", sent, rest)
		}
		f, _ := r.Blob(ctx, desc)
		if got := readBlob(t, f); !bytes.Equal(got, layer) {
			t.Fatal("the resumed blob reads back wrong")
		}
	})
}
