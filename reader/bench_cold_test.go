package reader

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/simregistry"
	"github.com/lazylayer/lazylayer/writer"
)

// coldRTT is the round trip the cold benchmarks add to loopback: a
// registry in the same region.
const coldRTT = 20 * time.Millisecond

// BenchmarkColdRead reads files of layers nobody read before, without a
// cache, from a registry 20 ms away, and reports the requests each file
// read cost (req/file) and its time in round trips (rtt/file); opening
// the layer is not counted. A cold read of a small file should cost one
// round trip; a large file read sequentially a few requests, thanks to
// read-ahead, rather than one per chunk.
func BenchmarkColdRead(b *testing.B) {
	srv, err := simregistry.NewServer(simregistry.WithRTT(coldRTT))
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()

	tarData, files := corpusTar(b, 64, 32<<10, 41)
	small, _ := writerBlob(b, tarData, writer.WithChunkSize(64<<10))
	smallURL := srv.BlobURL("bench/small", srv.AddBlob("bench/small", small))
	names := sortedNames(files)[:16]

	big, content := benchBlob()
	bigURL := srv.BlobURL("bench/big", srv.AddBlob("bench/big", big))

	open := func(b *testing.B, url string) *Layer {
		f, err := fetcher.NewHTTP(url)
		if err != nil {
			b.Fatal(err)
		}
		l, err := Open(context.Background(), f)
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	run := func(b *testing.B, url string, filesPerOp int, read func(*Layer) error) {
		var requests int
		var reading time.Duration
		for b.Loop() {
			b.StopTimer()
			l := open(b, url)
			srv.ResetStats()
			b.StartTimer()
			start := time.Now()
			if err := read(l); err != nil {
				b.Fatal(err)
			}
			reading += time.Since(start)
			b.StopTimer()
			requests += srv.Stats().Requests
			l.Close()
			b.StartTimer()
		}
		files := float64(b.N * filesPerOp)
		b.ReportMetric(float64(requests)/files, "req/file")
		// Round trips' worth of time per file: 1 is the target for a
		// small file.
		b.ReportMetric(float64(reading)/float64(coldRTT)/files, "rtt/file")
	}

	b.Run("small-files", func(b *testing.B) {
		run(b, smallURL, len(names), func(l *Layer) error {
			for _, name := range names {
				if _, err := l.ReadFile(name); err != nil {
					return err
				}
			}
			return nil
		})
	})
	b.Run("large-file/read32k", func(b *testing.B) {
		b.SetBytes(int64(len(content)))
		buf := make([]byte, 32<<10)
		run(b, bigURL, 1, func(l *Layer) error {
			f, err := l.Open(benchBigFile)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.CopyBuffer(io.Discard, readerOnly{f}, buf)
			return err
		})
	})
	b.Run("large-file/writeto", func(b *testing.B) {
		b.SetBytes(int64(len(content)))
		run(b, bigURL, 1, func(l *Layer) error {
			f, err := l.Open(benchBigFile)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(io.Discard, f)
			return err
		})
	})
}
