package reader

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/registrytest"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
)

// requestLog counts the requests an HTTP fetcher sent, and the spans of
// the largest one.
type requestLog struct {
	mu       sync.Mutex
	requests int
	maxSpans int
}

func (r *requestLog) observe(info fetcher.RequestInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	r.maxSpans = max(r.maxSpans, len(info.Spans))
}

func (r *requestLog) snapshot() (requests, maxSpans int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, r.maxSpans
}

// TestRegistryLazyReads reads layers pushed to a real registry lazily,
// with single- and multi-range requests and every kind of cache.
func TestRegistryLazyReads(t *testing.T) {
	reg := registrytest.Start(t)
	tarData, files := corpusTar(t, 48, 256<<10, 11)
	names := sortedNames(files)

	for _, format := range []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked} {
		blob, res := writerBlob(t, tarData, writer.WithFormat(format), writer.WithChunkSize(32<<10))
		repo := "lazy/" + strings.ReplaceAll(format.String(), ":", "-")
		d := reg.PushBlob(t, repo, blob)
		if d != res.Digest {
			t.Fatalf("registry stored %s, writer built %s", d, res.Digest)
		}
		caches := map[string]func(t *testing.T) cache.Cache{
			"none":   func(*testing.T) cache.Cache { return nil },
			"memory": func(*testing.T) cache.Cache { return cache.NewMemory(64 << 20) },
			"dir":    func(t *testing.T) cache.Cache { return newDirCache(t) },
			"tiered": func(t *testing.T) cache.Cache { return cache.NewTiered(cache.NewMemory(1<<20), newDirCache(t)) },
		}
		policies := map[string]fetcher.CoalescePolicy{
			"single": {MaxSpansPerRequest: 1},
			"multi":  {MaxSpansPerRequest: 16},
		}
		for cacheName, newCache := range caches {
			for policyName, policy := range policies {
				t.Run(fmt.Sprintf("%v/%s/%s", format, cacheName, policyName), func(t *testing.T) {
					var log requestLog
					f, err := fetcher.NewHTTP(reg.BlobURL(repo, d), fetcher.WithCoalescing(policy), fetcher.WithObserver(log.observe))
					if err != nil {
						t.Fatal(err)
					}
					c := newCache(t)
					opts := []Option{WithAnnotations(res.Annotations), WithTOCDigest(res.TOCDigest)}
					if c != nil {
						opts = append(opts, WithCache(c))
					}
					l, err := Open(t.Context(), f, opts...)
					if err != nil {
						t.Fatal(err)
					}
					defer l.Close()

					// Every other file by reads, then, with a cache, the
					// rest by FetchAll: its requests skip what the reads
					// cached, so they ask for many ranges at once.
					for k, name := range names {
						if k%2 == 0 {
							checkFile(t, l, name, files[name])
						}
					}
					if c == nil {
						checkAllFiles(t, l, files)
						return
					}
					if err := l.FetchAll(t.Context()); err != nil {
						t.Fatal(err)
					}
					requests, maxSpans := log.snapshot()
					switch {
					case policyName == "single" && maxSpans > 1:
						t.Errorf("a request asked for %d ranges, want 1", maxSpans)
					case policyName == "multi" && maxSpans < 2:
						t.Errorf("no request asked for more than %d range", maxSpans)
					}
					// Everything is cached now: reading it all again makes
					// no request.
					checkAllFiles(t, l, files)
					if after, _ := log.snapshot(); after != requests {
						t.Errorf("reading a cached layer made %d requests", after-requests)
					}
				})
			}
		}
	}
}

// TestRegistryBasicAuth reads a layer from a registry that demands
// credentials.
func TestRegistryBasicAuth(t *testing.T) {
	reg := registrytest.Start(t, registrytest.WithBasicAuth("lazy", "layer"))
	tarData, files := corpusTar(t, 12, 128<<10, 12)
	blob, res := writerBlob(t, tarData, writer.WithChunkSize(32<<10))
	d := reg.PushBlob(t, "auth/layer", blob)

	f, err := fetcher.NewHTTP(reg.BlobURL("auth/layer", d), fetcher.WithCredentials("lazy", "layer"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(t.Context(), f, WithTOCDigest(res.TOCDigest), WithCache(cache.NewMemory(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkAllFiles(t, l, files)

	wrong, err := fetcher.NewHTTP(reg.BlobURL("auth/layer", d), fetcher.WithCredentials("lazy", "wrong"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), wrong, WithTOCDigest(res.TOCDigest)); err == nil {
		t.Error("Open with a wrong password succeeded")
	}
}

func newDirCache(t *testing.T) *cache.Dir {
	t.Helper()
	c, err := cache.NewDir(t.TempDir(), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkFile reads name through Open and Read, the way a program would.
func checkFile(t *testing.T, l *Layer, name string, want []byte) {
	t.Helper()
	got, err := fs.ReadFile(readFileHider{l}, name)
	if err != nil {
		t.Errorf("read %q: %v", name, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("read %q: %d bytes differ from the %d written", name, len(got), len(want))
	}
}

// readFileHider hides Layer.ReadFile, so that fs.ReadFile opens and
// reads.
type readFileHider struct{ fs.FS }
