package prefetch_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/simregistry"
	"github.com/lazylayer/lazylayer/overlay"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/writer"
)

// coldStart is a layer of many files in a simulated registry, opened the
// way a client that knows the layer's descriptor opens it.
type coldStart struct {
	server *simregistry.Server
	files  []file
	blob   *writer.Result
	url    string
}

// newColdStart pushes a layer of 120 files, prioritising prioritized.
func newColdStart(t testing.TB, prioritized []string) *coldStart {
	t.Helper()
	var files []file
	for i := range 120 {
		files = append(files, randomFile(fmt.Sprintf("usr/lib/f%03d", i), 2000+i*97%20000, uint64(i)))
	}
	s, err := simregistry.NewServer(simregistry.WithRTT(20 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var blob bytes.Buffer
	res, err := writer.Build(context.Background(), &blob, tarOf(t, files), writer.WithPrioritizedFiles(prioritized))
	if err != nil {
		t.Fatal(err)
	}
	d := s.AddBlob("test/layer", blob.Bytes())
	return &coldStart{server: s, files: files, blob: res, url: s.BlobURL("test/layer", d)}
}

// open opens the layer through the registry, with src wrapping the HTTP
// fetcher if not nil.
func (c *coldStart) open(t testing.TB, wrap func(fetcher.Fetcher) fetcher.Fetcher) *reader.Layer {
	t.Helper()
	f, err := fetcher.NewHTTP(c.url, fetcher.WithPlainHTTP(), fetcher.WithSize(c.blob.Size),
		fetcher.WithCoalescing(fetcher.CoalescePolicy{MaxSpansPerRequest: 1024}))
	if err != nil {
		t.Fatal(err)
	}
	var src fetcher.Fetcher = f
	if wrap != nil {
		src = wrap(f)
	}
	l, err := reader.Open(context.Background(), src, reader.WithTOCDigest(c.blob.TOCDigest),
		reader.WithCache(cache.NewMemory(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// readAll reads every file and checks its content.
func (c *coldStart) readAll(t testing.TB, l *reader.Layer, names map[string]bool) {
	t.Helper()
	for _, f := range c.files {
		if names != nil && !names[f.name] {
			continue
		}
		got, err := l.ReadFile(f.name)
		if err != nil || !bytes.Equal(got, f.data) {
			t.Fatalf("%s: %d bytes, %v", f.name, len(got), err)
		}
	}
}

func TestTracePlanCostsOneRequestAfterOpen(t *testing.T) {
	c := newColdStart(t, nil)
	layer := c.open(t, nil)
	if st := c.server.Stats(); st.Requests != 1 {
		t.Fatalf("Open made %d requests, want footer and TOC in one", st.Requests)
	}
	// Every fourth file: scattered through the blob, 229 kB in all, less
	// than the first request of a prefetch asks for. (More would take a
	// second request, which waits for the first's answer: a fetcher sends
	// one multi-range request until it knows the host serves them.)
	var trace []prefetch.Access
	want := make(map[string]bool)
	for i := 0; i < len(c.files); i += 4 {
		trace = append(trace, prefetch.Access{Path: "/" + c.files[i].name})
		want[c.files[i].name] = true
	}
	plan, err := prefetch.FromTrace(context.Background(), overlay.New(layer), trace)
	if err != nil {
		t.Fatal(err)
	}
	if err := prefetch.Run(context.Background(), plan, []*reader.Layer{layer}); err != nil {
		t.Fatal(err)
	}
	c.readAll(t, layer, want)
	if st := c.server.Stats(); st.Waves() != 2 || st.Requests > 3 {
		t.Errorf("open, prefetch and read of %d scattered files made %d requests in %d round trips, want 2: %+v",
			len(want), st.Requests, st.Waves(), st.Log)
	}
}

func TestPreloadedLandmarkCostsOneRoundTrip(t *testing.T) {
	var prioritized []string
	want := make(map[string]bool)
	for i := 0; i < 120; i += 4 {
		name := fmt.Sprintf("usr/lib/f%03d", i)
		prioritized = append(prioritized, name)
		want[name] = true
	}
	c := newColdStart(t, prioritized)
	end := c.blob.TOC().PrefetchEnd
	if end <= 0 {
		t.Fatal("blob has no landmark")
	}
	layer := c.open(t, func(f fetcher.Fetcher) fetcher.Fetcher {
		return prefetch.Preload(context.Background(), f, fetcher.Range{Offset: 0, Length: end})
	})
	if err := prefetch.Run(context.Background(), prefetch.FromLandmark(0, layer.TOC()), []*reader.Layer{layer}); err != nil {
		t.Fatal(err)
	}
	c.readAll(t, layer, want)
	// The region was asked for with the tail, not after decoding the
	// index.
	if st := c.server.Stats(); st.Requests != 2 || st.Waves() != 1 {
		t.Fatalf("preloaded open, prefetch and read made %d requests in %d round trips, want the region and the tail in one: %+v",
			st.Requests, st.Waves(), st.Log)
	}
}
