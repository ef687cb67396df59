package convert_test

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/lazylayer/lazylayer/convert"
	"github.com/lazylayer/lazylayer/internal/dirtar"
	"github.com/lazylayer/lazylayer/internal/iox"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// realTrees are the trees of the benchmark image, bottom layer first:
// the Go toolchain, a JDK and a Python installation, as this machine has
// them, each under the path it has here.
func realTrees(b *testing.B) []string {
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Skip("no go command")
	}
	trees := []string{strings.TrimSpace(string(goroot))}
	// One JDK, then one Python: the first directory of each kind found.
	for _, kind := range [][]string{{"/usr/lib/jvm/temurin-*", "/usr/lib/jvm/java-*-openjdk-*"}, {"/usr/lib/python3.*"}} {
	kind:
		for _, pattern := range kind {
			m, _ := filepath.Glob(pattern)
			for _, dir := range m {
				if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
					trees = append(trees, dir)
					break kind
				}
			}
		}
	}
	if len(trees) < 3 {
		b.Skipf("trees %q: a JDK or Python is missing", trees)
	}
	return trees
}

// addTreeLayer stores the tree under dir as a gzip layer (gzip's
// default level, as docker and buildkit write layers) in a file of s,
// its entries under the tree's own path, and returns its descriptor and
// DiffID.
func addTreeLayer(b *testing.B, s *memStore, dir string) (ocispec.Descriptor, digest.Digest, int64) {
	pr, pw := io.Pipe()
	go func() { _, err := dirtar.Write(pw, dir); pw.CloseWithError(err) }()
	f, err := os.CreateTemp(s.dir, "src-*")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	blob := sha256.New()
	zw := gzip.NewWriter(io.MultiWriter(f, blob))
	diffID := sha256.New()
	counted := &iox.CountingWriter{W: io.MultiWriter(zw, diffID)}
	tw := tar.NewWriter(counted)
	tr := tar.NewReader(pr)
	prefix := strings.TrimPrefix(dir, "/") + "/"
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		h.Name = prefix + h.Name
		if err := tw.WriteHeader(h); err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			b.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	fi, _ := f.Stat()
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.NewDigest(digest.SHA256, blob), Size: fi.Size()}
	s.files[d.Digest] = f.Name()
	return d, digest.NewDigest(digest.SHA256, diffID), counted.N
}

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

// BenchmarkImageRealTrees converts a 3-layer image of real trees (Go
// toolchain, JDK, Python) from gzip to each format, with the plan from
// the image config that runs java, and reports throughput over the
// uncompressed layers, output size and the peak heap.
//
//	go test -run '^$' -bench ImageRealTrees -benchtime 1x ./convert
func BenchmarkImageRealTrees(b *testing.B) {
	trees := realTrees(b)
	src := newDiskStore(b.TempDir())
	img := ocispec.Image{
		Platform: linuxAMD64,
		Config:   ocispec.ImageConfig{Entrypoint: []string{filepath.Join(trees[1], "bin/java"), "-version"}, Env: []string{"PATH=/usr/bin:/bin"}},
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest}
	m.SchemaVersion = 2
	var tarBytes, srcBytes int64
	for _, dir := range trees {
		d, diffID, n := addTreeLayer(b, src, dir)
		m.Layers = append(m.Layers, d)
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, diffID)
		srcBytes += d.Size
		tarBytes += n
	}
	for range m.Layers {
		img.History = append(img.History, ocispec.History{CreatedBy: "tree"})
	}
	m.Config = src.addJSON(ocispec.MediaTypeImageConfig, img)
	src.root = src.addJSON(m.MediaType, m)
	b.Logf("source: %q, %d bytes of tar in %d bytes of gzip layers", trees, tarBytes, srcBytes)

	for _, format := range []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked} {
		b.Run(format.String(), func(b *testing.B) {
			for b.Loop() {
				dst := newDiskStore(b.TempDir())
				var mu sync.Mutex
				var outBytes int64
				stop := heapWatch()
				cpu0 := cpuTime()
				start := time.Now()
				root, err := convert.Image(context.Background(), src, dst, convert.WithFormat(format),
					convert.WithTempDir(b.TempDir()), convert.WithProgress(func(p convert.Progress) {
						if p.Done {
							mu.Lock()
							outBytes += p.Written
							mu.Unlock()
						}
					}))
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
