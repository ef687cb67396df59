package interop

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/lazylayer/lazylayer/interop/internal/corpus"
	"github.com/lazylayer/lazylayer/writer"
)

// BenchmarkBuild compares writer.Build with the reference estargz.Build on
// a tar of the Go toolchain tree. MB/s is tar input per second;
// out-bytes is the blob size and out/in the compression ratio. Each side
// runs at its own default level ("default": ours is
// writer.DefaultCompressionLevel, the reference's gzip.BestCompression) and
// at explicit levels for like-for-like comparisons. The reference is slow:
// run with -benchtime=1x.
func BenchmarkBuild(b *testing.B) {
	path, size := corpus.GorootTar(b)
	levels := []int{0, 6, 7, 9} // 0: the implementation's default
	for _, level := range levels {
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
	for _, level := range levels {
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

func benchBuild(b *testing.B, path string, size int64, build func(in *os.File, out io.Writer) error) {
	b.SetBytes(size)
	b.ReportAllocs()
	var out countingWriter
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
	b.ReportMetric(float64(out), "out-bytes")
	b.ReportMetric(float64(out)/float64(size), "out/in")
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}
