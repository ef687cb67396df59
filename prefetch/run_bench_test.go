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
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/writer"
)

// BenchmarkRun measures a cold prefetch of every other file of a 16 MB
// layer from a simulated registry 2 ms away, without a bandwidth cap:
// what the executor's requests, decompression and verification cost
// beyond the network. Bytes are the files' uncompressed bytes.
func BenchmarkRun(b *testing.B) {
	var files []file
	var plan prefetch.Plan
	var size int64
	for i := range 400 {
		// Half random, half repeated: about 2:1 compressible.
		f := randomFile(fmt.Sprintf("lib/f%03d", i), 20<<10+i*211%40<<10, uint64(i))
		copy(f.data[len(f.data)/2:], bytes.Repeat([]byte("lazylayer "), len(f.data)))
		files = append(files, f)
		if i%2 == 0 {
			plan.Add(prefetch.Item{Path: f.name, Priority: i})
			size += int64(len(f.data))
		}
	}
	s, err := simregistry.NewServer(simregistry.WithRTT(2 * time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var blob bytes.Buffer
	res, err := writer.Build(context.Background(), &blob, tarOf(b, files))
	if err != nil {
		b.Fatal(err)
	}
	url := s.BlobURL("bench/layer", s.AddBlob("bench/layer", blob.Bytes()))

	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		f, err := fetcher.NewHTTP(url, fetcher.WithPlainHTTP(), fetcher.WithSize(res.Size),
			fetcher.WithCoalescing(fetcher.CoalescePolicy{MaxSpansPerRequest: 1024}))
		if err != nil {
			b.Fatal(err)
		}
		layer, err := reader.Open(context.Background(), f, reader.WithCache(cache.NewMemory(64<<20)))
		if err != nil {
			b.Fatal(err)
		}
		if err := prefetch.Run(context.Background(), &plan, []*reader.Layer{layer}); err != nil {
			b.Fatal(err)
		}
		layer.Close()
	}
}
