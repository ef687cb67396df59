package writer

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/lazylayer/lazylayer/toc"
)

// BenchmarkBuild measures Build on the generated all-kinds tree (about
// 18 MiB of tar). MB/s is tar input per second.
func BenchmarkBuild(b *testing.B) {
	input := kindsTar(b)
	for _, bc := range []struct {
		name string
		opts []Option
	}{
		{"default", nil},
		{"prioritized", []Option{WithPrioritizedFiles([]string{"usr/bin/tool", "etc/hostname"})}},
		{"min-chunk", []Option{WithMinChunkSize(256 << 10)}},
		{"level1", []Option{WithCompressionLevel(1)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(input)))
			b.ReportAllocs()
			var out int64
			for b.Loop() {
				res, err := Build(context.Background(), io.Discard, bytes.NewReader(input), bc.opts...)
				if err != nil {
					b.Fatal(err)
				}
				out = res.Size
			}
			b.ReportMetric(float64(out), "out-bytes")
		})
	}
}

// BenchmarkBuildPeakMemory builds layers of growing size from a streamed,
// generated tar and reports the peak of runtime.MemStats.HeapInuse sampled
// every millisecond during the build (peak-heap-bytes), and the memory the
// process obtained from the OS by the end (sys-bytes). Bounded memory
// shows as peaks that do not grow with the layer size. Run with
// -benchtime=1x.
//
// The small-files cases build layers of 300,000 and 1,000,000 files of 0 to
// 512 bytes (tartest.SmallFiles), in both formats, where the index, not
// the data, is what memory must not hold whole. The process's peak RSS is
// what users see: run one case under /usr/bin/time -v, e.g.
//
//	go test -c -o /tmp/writer.test ./writer
//	/usr/bin/time -v /tmp/writer.test -test.run '^$' -test.bench 'BuildPeakMemory/small-300k/estargz' -test.benchtime 1x
func BenchmarkBuildPeakMemory(b *testing.B) {
	for _, n := range []int{300_000, 1_000_000} {
		for _, format := range []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked} {
			name := fmt.Sprintf("small-%dk/%s", n/1000, strings.TrimSuffix(format.String(), ":chunked"))
			b.Run(name, func(b *testing.B) {
				for b.Loop() {
					pr, pw := io.Pipe()
					go func() { pw.CloseWithError(tartest.SmallFiles(pw, n)) }()
					measurePeakMemory(b, pr, WithFormat(format))
				}
			})
		}
	}
	b.Run("one-2GiB-file", func(b *testing.B) {
		for b.Loop() {
			measurePeakMemory(b, generatedFile(2<<30))
		}
	})
	for _, size := range []int64{128 << 20, 512 << 20} {
		for _, prioritized := range []bool{false, true} {
			name := fmt.Sprintf("%dMiB", size>>20)
			var opts []Option
			if prioritized {
				name += "/prioritized"
				opts = append(opts, WithPrioritizedFiles([]string{"f/000003"}), WithTempDir(b.TempDir()))
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(size)
				for b.Loop() {
					measurePeakMemory(b, generatedLayer(size), opts...)
				}
			})
		}
	}
}

// measurePeakMemory builds in and reports the peak heap in use during the
// build and the memory obtained from the OS by its end.
func measurePeakMemory(b *testing.B, in io.Reader, opts ...Option) {
	runtime.GC()
	peak, stop := sampleHeapInuse()
	_, err := Build(context.Background(), io.Discard, in, opts...)
	stop()
	if err != nil {
		b.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(peak.Load()), "peak-heap-bytes")
	b.ReportMetric(float64(ms.Sys), "sys-bytes")
}

// sampleHeapInuse records the peak HeapInuse until stop is called.
func sampleHeapInuse() (peak *atomic.Uint64, stop func()) {
	peak = new(atomic.Uint64)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var ms runtime.MemStats
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return peak, func() { close(done); <-finished }
}

// generatedFile streams a tar of one file of size bytes with the
// content of generatedLayer's files.
func generatedFile(size int64) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		fill := wordFiller()
		body := make([]byte, 1<<20)
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "big", Mode: 0o644, Size: size})
		for n := int64(0); n < size && err == nil; n += int64(len(body)) {
			fill(body)
			_, err = tw.Write(body[:min(int64(len(body)), size-n)])
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// generatedLayer streams a tar of size bytes of 1 MiB files with
// compressible, non-repeating content, without holding it in memory.
func generatedLayer(size int64) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		fill := wordFiller()
		body := make([]byte, 1<<20)
		tw := tar.NewWriter(pw)
		for i := int64(0); i < size>>20; i++ {
			fill(body)
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("f/%06d", i), Mode: 0o644, Size: int64(len(body))}
			if err := tw.WriteHeader(hdr); err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := tw.Write(body); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(tw.Close())
	}()
	return pr
}

// BenchmarkChunkerText measures content-defined chunking alone, on text
// without zero bytes (a file of source code, the common case).
func BenchmarkChunkerText(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 32<<20)
	for i := range data {
		data[i] = byte(' ' + rng.IntN(95))
	}
	b.SetBytes(int64(len(data)))
	c := newChunker(DefaultChunkSize, 0, false)
	for b.Loop() {
		c.reset(bytes.NewReader(data), int64(len(data)))
		for {
			if _, _, err := c.next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// wordFiller returns a function that fills a buffer with compressible,
// non-repeating text, the same sequence for every filler.
func wordFiller() func([]byte) {
	rng := rand.New(rand.NewPCG(7, 7))
	words := []string{"layer ", "chunk ", "member ", "gzip ", "seek ", "lazy ", "pull ", "\n"}
	return func(b []byte) {
		for j := 0; j < len(b); {
			j += copy(b[j:], words[rng.IntN(len(words))])
		}
	}
}
