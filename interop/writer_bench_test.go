//go:build unix

package interop

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/lazylayer/lazylayer/interop/internal/corpus"
	"github.com/lazylayer/lazylayer/writer"
)

// BenchmarkBuild compares writer.Build with the reference estargz.Build on
// a tar of the Go toolchain tree. MB/s is tar input per second;
// out-bytes is the blob size and out/in the compression ratio; cpu-s/op is
// the process's user+system CPU time per build, which a busy machine
// disturbs less than wall time. Each side
// runs at its own default level ("default": ours is
// writer.DefaultCompressionLevel, the reference's gzip.BestCompression) and
// at the other's default level for like-for-like comparisons. The
// reference is slow: run with -benchtime=1x.
func BenchmarkBuild(b *testing.B) {
	path, size := corpus.GorootTar(b)
	// 0 is each side's default: writer.DefaultCompressionLevel (7) for
	// lazylayer, 9 for the reference.
	for _, level := range []int{0, 6, 9} {
		b.Run(fmt.Sprintf("lazylayer/%s", levelName(level)), func(b *testing.B) {
			var opts []writer.Option
			if level != 0 {
				opts = append(opts, writer.WithCompressionLevel(level))
			}
			benchBuild(b, path, size, func(in *os.File, out io.Writer) error {
				_, err := writer.Build(context.Background(), out, in, opts...)
				return err
			})
		})
	}
	for _, level := range []int{0, 6, 7} {
		b.Run(fmt.Sprintf("reference/%s", levelName(level)), func(b *testing.B) {
			var opts []estargz.Option
			if level != 0 {
				opts = append(opts, estargz.WithCompressionLevel(level))
			}
			benchBuild(b, path, size, func(in *os.File, out io.Writer) error {
				blob, err := estargz.Build(io.NewSectionReader(in, 0, size), opts...)
				if err != nil {
					return err
				}
				if _, err := io.Copy(out, blob); err != nil {
					return err
				}
				return blob.Close()
			})
		})
	}
}

func levelName(level int) string {
	if level == 0 {
		return "default"
	}
	return fmt.Sprintf("level%d", level)
}

// benchBuild runs build on the tar at path and returns the size of its
// output.
func benchBuild(b *testing.B, path string, size int64, build func(in *os.File, out io.Writer) error) countingWriter {
	b.SetBytes(size)
	b.ReportAllocs()
	var out countingWriter
	cpuStart := cpuSeconds()
	for b.Loop() {
		in, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		out = 0
		err = build(in, &out)
		in.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuSeconds()-cpuStart)/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(out), "out-bytes")
	b.ReportMetric(float64(out)/float64(size), "out/in")
	return out
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
