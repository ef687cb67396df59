package convert_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/convert"
	"github.com/lazylayer/lazylayer/image/layout"
	"github.com/lazylayer/lazylayer/internal/benchimage"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/toc"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// heapWatch samples the heap until stopped and returns its peaks: the
// bytes of heap objects (live or not yet swept), of the heap marked live
// by the last GC, and all memory the runtime has mapped.
func heapWatch() (stop func() (heap, live, total uint64)) {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"}, {Name: "/gc/heap/live:bytes"}}
	var heap, live, total uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	profiled := false
	threshold, _ := strconv.Atoi(os.Getenv("CONVERT_HEAP_THRESHOLD"))
	wg.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(samples)
			heap, total = max(heap, samples[0].Value.Uint64()), max(total, samples[1].Value.Uint64())
			live = max(live, samples[2].Value.Uint64())
			if p := os.Getenv("CONVERT_HEAP_PROFILE"); p != "" && heap > uint64(threshold) && !profiled {
				profiled = true
				runtime.GC()
				f, _ := os.Create(p)
				pprof.WriteHeapProfile(f)
				f.Close()
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() (uint64, uint64, uint64) {
		close(done)
		wg.Wait()
		return heap, live, total
	}
}

// BenchmarkImageRealTrees converts the 3-layer image of real trees of
// package benchimage (Go toolchain, JDK, Python) from gzip to each
// format, with the plan from the image config that runs java, and
// reports throughput over the uncompressed layers, output size and the
// peak heap.
//
//	go test -run '^$' -bench ImageRealTrees -benchtime 1x ./convert
func BenchmarkImageRealTrees(b *testing.B) {
	dir := b.TempDir()
	img, err := benchimage.Build(context.Background(), dir, "src")
	if errors.Is(err, benchimage.ErrMissing) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	src, err := layout.Open(dir, "src")
	if err != nil {
		b.Fatal(err)
	}
	tarBytes, srcBytes := img.TarBytes, img.GzipBytes
	b.Logf("source: %q, %d bytes of tar in %d bytes of gzip layers", img.Layers, tarBytes, srcBytes)

	// estargz-level-9 is at ctr-remote's default level, for a profile
	// of what examples/bench's convert-estargz mode compares.
	for _, c := range []struct {
		name   string
		format toc.Format
		opts   []convert.Option
	}{
		{"estargz", toc.FormatEStargz, nil},
		{"estargz-level-9", toc.FormatEStargz, []convert.Option{convert.WithCompressionLevel(9)}},
		{"zstd:chunked", toc.FormatZstdChunked, nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				dst := newDiskStore(b.TempDir())
				var mu sync.Mutex
				var outBytes int64
				stop := heapWatch()
				cpu0 := cpuTime()
				start := time.Now()
				root, err := convert.Image(context.Background(), src, dst, append([]convert.Option{convert.WithFormat(c.format),
					convert.WithTempDir(b.TempDir()), convert.WithProgress(func(p convert.Progress) {
						if p.Done {
							mu.Lock()
							outBytes += p.Written
							mu.Unlock()
						}
					})}, c.opts...)...)
				elapsed, cpu := time.Since(start), cpuTime()-cpu0
				heap, live, total := stop()
				if err != nil {
					b.Fatal(err)
				}
				var out ocispec.Manifest
				dst.getJSON(root, &out)
				b.Logf("%s: %d layers, patterns %q", root.Digest, len(out.Layers), out.Annotations[prefetch.AnnotationPatterns])
				b.ReportMetric(float64(tarBytes)/1e6/elapsed.Seconds(), "MB/s")
				b.ReportMetric(float64(outBytes)/1e6, "out-MB")
				b.ReportMetric(float64(srcBytes)/1e6, "src-MB")
				b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MiB")
				b.ReportMetric(float64(live)/(1<<20), "peak-live-MiB")
				b.ReportMetric(float64(total)/(1<<20), "peak-runtime-MiB")
				b.ReportMetric(elapsed.Seconds(), "s")
				b.ReportMetric(cpu.Seconds(), "CPU-s")
			}
		})
	}
}

// cpuTime is the user and system time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
