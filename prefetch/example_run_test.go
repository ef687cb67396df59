package prefetch_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"log"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/writer"
)

// exampleTar is a small layer: a program, its library, and files it never
// reads at start.
func exampleTar() *bytes.Buffer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct{ name, data string }{
		{"usr/share/doc/README", "documentation nobody reads at start"},
		{"usr/lib/libapp.so", "the library"},
		{"usr/share/locale/de.mo", "translations"},
		{"usr/bin/app", "the program"},
	} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg})
		tw.Write([]byte(f.data))
	}
	tw.Close()
	return &buf
}

// openBlob opens a blob lazily, with a cache, through f's fetcher.
func openBlob(blob []byte, wrap func(fetcher.Fetcher) fetcher.Fetcher, opts ...reader.Option) (*reader.Layer, *fetcher.ReaderAt) {
	f := fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))
	var src fetcher.Fetcher = f
	if wrap != nil {
		src = wrap(f)
	}
	layer, err := reader.Open(context.Background(), src, append(opts, reader.WithCache(cache.NewMemory(1<<20)))...)
	if err != nil {
		log.Fatal(err)
	}
	return layer, f
}

// Run a workload lazily once and record what it reads; rebuild the layer
// with those files first; later starts fetch them in one range, requested
// together with the layer's index.
func ExampleRecorder() {
	ctx := context.Background()
	var plain bytes.Buffer
	if _, err := writer.Build(ctx, &plain, exampleTar()); err != nil {
		log.Fatal(err)
	}

	// 1. Record: the workload reads the program, then its library.
	var rec prefetch.Recorder
	layer, _ := openBlob(plain.Bytes(), nil, reader.WithAccessObserver(rec.Observe))
	layer.ReadFile("usr/bin/app")
	layer.ReadFile("usr/lib/libapp.so")
	layer.Close()
	profile := rec.Plan(0)
	fmt.Println("recorded:", profile.Paths(0))

	// 2. Rebuild with the recorded files first, behind a landmark.
	var rebuilt bytes.Buffer
	res, err := writer.Build(ctx, &rebuilt, exampleTar(), writer.WithPrioritizedFiles(profile.Paths(0)))
	if err != nil {
		log.Fatal(err)
	}

	// 3. Start fast: the landmark's region [0, PrefetchEnd), published
	// with the layer, is fetched alongside the index, then prefetched
	// into the cache.
	region := fetcher.Range{Offset: 0, Length: res.TOC().PrefetchEnd}
	layer, f := openBlob(rebuilt.Bytes(), func(f fetcher.Fetcher) fetcher.Fetcher {
		return prefetch.Preload(ctx, f, region)
	})
	defer layer.Close()
	plan := prefetch.FromLandmark(0, layer.TOC())
	if err := prefetch.Run(ctx, plan, []*reader.Layer{layer}); err != nil {
		log.Fatal(err)
	}
	data, _ := layer.ReadFile("usr/bin/app")
	fmt.Printf("landmark plan: %v\nread %q; requests: %d\n", plan.Paths(0), data, f.Stats().Requests)
	// Output:
	// recorded: [usr/bin/app usr/lib/libapp.so]
	// landmark plan: [usr/bin/app usr/lib/libapp.so]
	// read "the program"; requests: 2
}
