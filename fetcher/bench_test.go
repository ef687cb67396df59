package fetcher_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/registrytest"
)

func randomRanges(n int, size int64) []fetcher.Range {
	rng := rand.New(rand.NewPCG(3, 4))
	rs := make([]fetcher.Range, n)
	for i := range rs {
		l := 1 + rng.Int64N(16<<10)
		rs[i] = fetcher.Range{Offset: rng.Int64N(size - l), Length: l}
	}
	return rs
}

func BenchmarkCoalesce(b *testing.B) {
	ranges := randomRanges(10_000, 1<<30)
	b.ReportAllocs()
	for b.Loop() {
		fetcher.Coalesce(ranges, fetcher.DefaultCoalescePolicy())
	}
}

// BenchmarkHTTPLoopback fetches 64 random ranges of a 16 MiB blob per
// iteration from a local server, with multi-range requests and without.
func BenchmarkHTTPLoopback(b *testing.B) {
	blob := testBlob(16 << 20)
	srv := registrytest.NewBlobServer(b, blob)
	ranges := randomRanges(64, int64(len(blob)))
	for _, bc := range []struct {
		name  string
		spans int
	}{{"multi-range", 16}, {"single-range", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			f, err := fetcher.NewHTTP(srv.BlobURL(), fetcher.WithSize(int64(len(blob))),
				fetcher.WithCoalescing(fetcher.CoalescePolicy{MaxGap: 4 << 10, MaxSpansPerRequest: bc.spans}))
			if err != nil {
				b.Fatal(err)
			}
			var total int64
			for _, r := range ranges {
				total += r.Length
			}
			b.SetBytes(total)
			for b.Loop() {
				if err := f.Fetch(context.Background(), ranges, func(fetcher.Range, []byte) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
			st := f.Stats()
			b.ReportMetric(float64(st.Requests)/float64(b.N), "requests/op")
		})
	}
}
