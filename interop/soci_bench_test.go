package interop

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"testing"

	"github.com/awslabs/soci-snapshotter/ztoc"
	"github.com/awslabs/soci-snapshotter/ztoc/compression"

	"github.com/lazylayer/lazylayer/interop/internal/corpus"
	"github.com/lazylayer/lazylayer/toc/soci"
)

// BenchmarkSociIndex measures making the zTOC of GOROOT gzipped at level
// 6 (default span size) with lazylayer's indexer and soci-snapshotter's
// builder, against a plain single-core gunzip of the same layer. SetBytes
// is the layer's uncompressed size, so MB/s compare across the four.
//
//	go test -run '^$' -bench SociIndex -cpu 1 ./interop
func BenchmarkSociIndex(b *testing.B) {
	data := corpus.GorootBytes(b)
	path := gzipLayer(b, "goroot.tar.gz", data, 6, gzip.Header{}, 1<<30)
	b.Run("lazylayer", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := soci.Index(context.Background(), f, soci.Gzip); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	b.Run("soci", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := ztoc.NewBuilder(sociTool).BuildZtoc(path, soci.DefaultSpanSize, ztoc.WithCompression(compression.Gzip)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("compress-gzip", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			r, err := gzip.NewReader(f)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	if _, err := exec.LookPath("gzip"); err == nil {
		b.Run("gzip-dc", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := exec.Command("sh", "-c", "gzip -dc < "+path+" | wc -c > /dev/null").Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
