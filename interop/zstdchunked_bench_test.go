//go:build unix

package interop

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	storagecompressor "github.com/containers/storage/pkg/chunked/compressor"
	"github.com/klauspost/compress/zstd"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/simregistry"
	"github.com/lazylayer/lazylayer/interop/internal/corpus"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
)

// benchTrees lists the trees BenchmarkZstdChunkedBuild tars, as
// name=directory pairs separated by commas; a directory that does not exist
// skips its tree. "goroot" with no directory is `go env GOROOT`.
var benchTrees = flag.String("trees", "goroot,jdk=/usr/lib/jvm/java-17-openjdk-amd64,python=/root/.pyenv/versions/3.11.7",
	"trees of BenchmarkZstdChunkedBuild: name=dir,... (goroot alone is go env GOROOT)")

// BenchmarkZstdChunkedBuild compares our zstd:chunked writer with the
// reference writers on tars of real trees (-trees: by default the Go
// toolchain, a JDK with its 128 MB lib/modules, and a Python installation
// with its site-packages). On every tree it runs estargz's zstdchunked
// compressor (estargz.Build, zstd.SpeedDefault, fixed 4 MiB chunks) and
// ours at its defaults, with containers/storage's chunks of about 64 KiB
// (WithContentChunkMin(0)), and with estargz's fixed 4 MiB chunks (the
// same frames, a like-for-like comparison of size). On the Go toolchain it also
// runs ours at levels 1, 6 and 10, and containers/storage's
// compressor.ZstdCompressor (podman's and buildah's; its default level is
// 10, also run at 3).
//
// MB/s is tar input per second, cpu-s/op the process's user+system CPU
// time per build (which a busy machine disturbs less than wall time),
// out/in the blob size over the input size, and x-estargz-size our blob's
// size over estargz's on the same tree (reported once estargz has run).
// The references are slow: run with -benchtime=1x.
func BenchmarkZstdChunkedBuild(b *testing.B) {
	for _, tree := range parseBenchTrees(b, *benchTrees) {
		b.Run(tree.name, func(b *testing.B) {
			if _, err := os.Stat(tree.dir); err != nil {
				b.Skipf("tree %s: %v", tree.name, err)
			}
			path, size := corpus.TreeTar(b, tree.dir)
			benchZstdChunkedTree(b, tree.name, path, size)
		})
	}
}

type benchTree struct{ name, dir string }

func parseBenchTrees(tb testing.TB, s string) []benchTree {
	var trees []benchTree
	for _, f := range strings.Split(s, ",") {
		name, dir, ok := strings.Cut(f, "=")
		if !ok && name == "goroot" {
			out, err := exec.Command("go", "env", "GOROOT").Output()
			if err != nil {
				tb.Fatalf("go env GOROOT: %v", err)
			}
			dir, ok = strings.TrimSpace(string(out)), true
		}
		if !ok || name == "" || dir == "" {
			tb.Fatalf("-trees: %q is not name=dir", f)
		}
		trees = append(trees, benchTree{name, dir})
	}
	return trees
}

func benchZstdChunkedTree(b *testing.B, tree, path string, size int64) {
	// estargz runs first, so that ours can report its size against it.
	var estargzSize countingWriter
	b.Run("estargz-zstdchunked/default", func(b *testing.B) {
		estargzSize = benchBuild(b, path, size, func(in *os.File, out io.Writer) error {
			c := zstdCompression{&zstdchunked.Compressor{CompressionLevel: zstd.SpeedDefault}, &zstdchunked.Decompressor{}}
			blob, err := estargz.Build(io.NewSectionReader(in, 0, size), estargz.WithCompression(c))
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, blob); err != nil {
				return err
			}
			return blob.Close()
		})
	})
	ours := func(name string, opts ...writer.Option) {
		b.Run("lazylayer/"+name, func(b *testing.B) {
			opts := append([]writer.Option{writer.WithFormat(toc.FormatZstdChunked)}, opts...)
			out := benchBuild(b, path, size, func(in *os.File, out io.Writer) error {
				_, err := writer.Build(context.Background(), out, in, opts...)
				return err
			})
			if estargzSize > 0 {
				b.ReportMetric(float64(out)/float64(estargzSize), "x-estargz-size")
			}
		})
	}
	ours("default")
	ours("storage-chunks", writer.WithContentChunkMin(0))
	ours("fixed-4MiB", writer.WithFixedChunks())
	if tree != "goroot" {
		return
	}
	for _, level := range []int{1, 6, 10} {
		ours(levelName(level), writer.WithCompressionLevel(level))
	}
	for _, level := range []int{0, 3} {
		b.Run("containers-storage/"+levelName(level), func(b *testing.B) {
			benchBuild(b, path, size, func(in *os.File, out io.Writer) error {
				var lp *int
				if level != 0 {
					lp = &level
				}
				w, err := storagecompressor.ZstdCompressor(out, map[string]string{}, lp)
				if err != nil {
					return err
				}
				if _, err := io.Copy(w, in); err != nil {
					return err
				}
				return w.Close()
			})
		})
	}
}

// BenchmarkZstdChunkedLazyStart replays the go-build startup trace
// (examples/bench/testdata) against GOROOT layers in a simulated registry
// 20 ms away behind 50 MB/s, as eStargz and as zstd:chunked, both written
// by our writer without prioritised files. Each run opens the layer (one
// request, from the layer's annotations, as a client with the manifest
// has them), fetches every frame the trace's files need in one Fetch
// (which the HTTP fetcher coalesces), then reads the files through the
// reader, which decompresses and verifies them. Reported: requests and
// MB fetched per start, the physical limit for the bytes fetched
// (2 RTT + bytes/bandwidth), and ms/op over that limit.
func BenchmarkZstdChunkedLazyStart(b *testing.B) {
	tarPath, _ := corpus.GorootTar(b)
	trace := loadStartupTrace(b)
	link := simregistry.Link{RTT: 20 * time.Millisecond, Bandwidth: 50e6}
	srv, err := simregistry.NewServer(simregistry.WithLink(link))
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	for _, format := range []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked} {
		b.Run(strings.ReplaceAll(format.String(), ":", "-"), func(b *testing.B) {
			blob, res := buildLayer(b, tarPath, format)
			d := srv.AddBlob("goroot/"+strings.ReplaceAll(format.String(), ":", "-"), blob.Bytes())
			ref := srv.Host() + "/goroot/" + strings.ReplaceAll(format.String(), ":", "-") + "@" + d.String()
			opts := []reader.Option{reader.WithAnnotations(res.Annotations)}

			var fetched int64
			var opening time.Duration
			b.ResetTimer()
			for b.Loop() {
				srv.ResetStats()
				open, err := lazyStart(ref, int64(blob.Len()), opts, trace)
				if err != nil {
					b.Fatal(err)
				}
				opening += open
				fetched = srv.Stats().Bytes
			}
			b.StopTimer()
			st := srv.Stats()
			limit := link.PhysicalLimit(fetched)
			b.ReportMetric(float64(st.Requests), "requests/op")
			b.ReportMetric(float64(fetched)/1e6, "MB-fetched/op")
			b.ReportMetric(float64(limit.Milliseconds()), "limit-ms")
			b.ReportMetric(float64(opening.Milliseconds())/float64(b.N), "open-ms/op")
			b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(limit), "x-limit")
		})
	}
}

// BenchmarkZstdChunkedOpen opens the GOROOT layer of
// BenchmarkZstdChunkedLazyStart, as eStargz and as zstd:chunked, from
// memory: no network, so what it measures is the index work alone
// (decompressing, verifying and decoding the TOC; for zstd:chunked also
// the tar-split and its check against the TOC, which Open runs alongside
// the TOC on another goroutine). cpu-ms/op is the process CPU time per
// open, all goroutines included, which a busy machine disturbs less than
// ns/op.
func BenchmarkZstdChunkedOpen(b *testing.B) {
	tarPath, _ := corpus.GorootTar(b)
	for _, format := range []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked} {
		b.Run(strings.ReplaceAll(format.String(), ":", "-"), func(b *testing.B) {
			blob, res := buildLayer(b, tarPath, format)
			f := fetcher.FromReaderAt(bytes.NewReader(blob.Bytes()), int64(blob.Len()))
			opts := []reader.Option{reader.WithAnnotations(res.Annotations)}
			b.ReportAllocs()
			runtime.GC()
			cpuStart := cpuSeconds()
			for b.Loop() {
				l, err := reader.Open(context.Background(), f, opts...)
				if err != nil {
					b.Fatal(err)
				}
				l.Close()
			}
			b.ReportMetric((cpuSeconds()-cpuStart)*1e3/float64(b.N), "cpu-ms/op")
		})
	}
}

// buildLayer builds a layer of the given format from the tar at tarPath
// with our writer's defaults.
func buildLayer(b *testing.B, tarPath string, format toc.Format) (*bytes.Buffer, *writer.Result) {
	in, err := os.Open(tarPath)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	var blob bytes.Buffer
	res, err := writer.Build(context.Background(), &blob, in, writer.WithFormat(format))
	if err != nil {
		b.Fatal(err)
	}
	return &blob, res
}

// loadStartupTrace returns the files examples/bench's go-build trace
// reads.
func loadStartupTrace(tb testing.TB) []string {
	f, err := os.Open("../examples/bench/testdata/go-build.trace")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			names = append(names, line)
		}
	}
	return names
}

// lazyStart opens the layer over HTTP, fetches the frames of the trace's
// files in one Fetch and reads the files. It returns how long Open took.
func lazyStart(ref string, size int64, opts []reader.Option, trace []string) (time.Duration, error) {
	ctx := context.Background()
	hf, err := fetcher.NewHTTP(ref, fetcher.WithPlainHTTP(), fetcher.WithSize(size), fetcher.WithMaxConnections(8),
		fetcher.WithCoalescing(fetcher.CoalescePolicy{MaxGap: 64 << 10, MaxRequestSize: 64 << 20, MaxSpansPerRequest: 512}))
	if err != nil {
		return 0, err
	}
	pf := &prefetched{Fetcher: hf, frames: map[fetcher.Range][]byte{}}
	start := time.Now()
	l, err := reader.Open(ctx, pf, opts...)
	if err != nil {
		return 0, err
	}
	open := time.Since(start)
	defer l.Close()
	byName := map[string]*toc.Entry{}
	for _, e := range l.TOC().Entries {
		byName[e.Name] = e
	}
	var files []string
	var ranges []fetcher.Range
	seen := map[fetcher.Range]bool{}
	for _, name := range trace {
		e := byName[name]
		if e == nil || e.Type != toc.TypeReg {
			continue
		}
		files = append(files, name)
		for _, c := range e.Chunks {
			r := fetcher.Range{Offset: c.FrameOffset, Length: c.FrameEnd - c.FrameOffset}
			if !c.Zeros && !seen[r] {
				seen[r] = true
				ranges = append(ranges, r)
			}
		}
	}
	err = hf.Fetch(ctx, ranges, func(r fetcher.Range, data []byte) error {
		pf.mu.Lock()
		pf.frames[r] = data
		pf.mu.Unlock()
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, name := range files {
		if _, err := l.ReadFile(name); err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
	}
	return open, nil
}

// prefetched serves frames fetched ahead from memory, and anything else
// from the network.
type prefetched struct {
	fetcher.Fetcher
	mu     sync.Mutex
	frames map[fetcher.Range][]byte
}

func (p *prefetched) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	var rest []fetcher.Range
	for _, r := range ranges {
		p.mu.Lock()
		data, ok := p.frames[r]
		p.mu.Unlock()
		if !ok {
			rest = append(rest, r)
			continue
		}
		if err := fn(r, data); err != nil {
			return err
		}
	}
	if len(rest) == 0 {
		return nil
	}
	return p.Fetcher.Fetch(ctx, rest, fn)
}
