package writer

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
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
func BenchmarkBuildPeakMemory(b *testing.B) {
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
					runtime.GC()
					peak, stop := sampleHeapInuse()
					_, err := Build(context.Background(), io.Discard, generatedLayer(size), opts...)
					stop()
					if err != nil {
						b.Fatal(err)
					}
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
					b.ReportMetric(float64(peak.Load()), "peak-heap-bytes")
					b.ReportMetric(float64(ms.Sys), "sys-bytes")
				}
			})
		}
	}
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

// generatedLayer streams a tar of size bytes of 1 MiB files with
// compressible, non-repeating content, without holding it in memory.
func generatedLayer(size int64) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		rng := rand.New(rand.NewPCG(7, 7))
		words := []string{"layer ", "chunk ", "member ", "gzip ", "seek ", "lazy ", "pull ", "\n"}
		body := make([]byte, 1<<20)
		tw := tar.NewWriter(pw)
		for i := int64(0); i < size>>20; i++ {
			for j := 0; j < len(body); {
				j += copy(body[j:], words[rng.IntN(len(words))])
			}
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
