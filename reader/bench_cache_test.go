package reader

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
)

// benchBigFile is the one file of benchBlob: 32 MiB, half text, half
// incompressible, in the writer's default 4 MiB chunks.
const benchBigFile = "big"

var benchBlob = sync.OnceValues(func() ([]byte, []byte) {
	content := append(pseudoRandom(16<<20, 1), bytes.Repeat([]byte("sixteen bytes ok"), 1<<20)...)
	var tarData bytes.Buffer
	tw := tar.NewWriter(&tarData)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: benchBigFile, Mode: 0o644, Size: int64(len(content))})
	tw.Write(content)
	tw.Close()
	var blob bytes.Buffer
	if _, err := writer.Build(context.Background(), &blob, &tarData); err != nil {
		panic(err)
	}
	return blob.Bytes(), content
})

// warmLayer opens benchBlob with the named cache and fills the cache.
func warmLayer(b *testing.B, cacheKind string) (*Layer, []byte) {
	blob, content := benchBlob()
	var c cache.Cache
	switch cacheKind {
	case "memory":
		c = cache.NewMemory(256 << 20)
	case "dir":
		d, err := cache.NewDir(b.TempDir(), 256<<20)
		if err != nil {
			b.Fatal(err)
		}
		c = d
	}
	l, err := Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))), WithCache(c))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	if err := l.FetchAll(context.Background()); err != nil {
		b.Fatal(err)
	}
	return l, content
}

// BenchmarkWarmRandomRead4K reads 4 KiB at random offsets of a 32 MiB
// file whose chunks are all cached.
func BenchmarkWarmRandomRead4K(b *testing.B) {
	for _, kind := range []string{"memory", "dir"} {
		b.Run(kind, func(b *testing.B) {
			l, content := warmLayer(b, kind)
			f, err := l.Open(benchBigFile)
			if err != nil {
				b.Fatal(err)
			}
			ra := f.(io.ReaderAt)
			rng := rand.New(rand.NewPCG(1, 2))
			buf := make([]byte, 4<<10)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for b.Loop() {
				off := rng.Int64N(int64(len(content) - len(buf)))
				if _, err := ra.ReadAt(buf, off); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWarmSequentialRead streams the cached 32 MiB file, with 32 KiB
// reads (as cat or io.Copy without WriterTo) and with WriteTo.
func BenchmarkWarmSequentialRead(b *testing.B) {
	for _, kind := range []string{"memory", "dir"} {
		for _, how := range []string{"read32k", "writeto"} {
			b.Run(kind+"/"+how, func(b *testing.B) {
				l, content := warmLayer(b, kind)
				buf := make([]byte, 32<<10)
				b.SetBytes(int64(len(content)))
				b.ResetTimer()
				for b.Loop() {
					f, err := l.Open(benchBigFile)
					if err != nil {
						b.Fatal(err)
					}
					var n int64
					if how == "writeto" {
						n, err = io.Copy(io.Discard, f.(io.Reader))
					} else {
						n, err = io.CopyBuffer(io.Discard, readerOnly{f}, buf)
					}
					if err != nil || n != int64(len(content)) {
						b.Fatalf("read %d bytes, %v", n, err)
					}
					f.Close()
				}
			})
		}
	}
}

// BenchmarkWarmZerosRead4K reads 4 KiB at random offsets of a zstd:chunked
// file's 16 MiB hole (chunks of zeros) and, as the anchor, of its cached
// data chunks around it.
func BenchmarkWarmZerosRead4K(b *testing.B) {
	const data, hole = 4 << 20, 16 << 20
	content := append(pseudoRandom(data, 1), make([]byte, hole)...)
	content = append(content, pseudoRandom(data, 2)...)
	tarData := tarOf(b, []tar.Header{{Typeflag: tar.TypeReg, Name: "f", Mode: 0o644}}, content)
	blob, _ := writerBlob(b, tarData, writer.WithFormat(toc.FormatZstdChunked))
	l, err := Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))), WithCache(cache.NewMemory(256<<20)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	if err := l.FetchAll(context.Background()); err != nil {
		b.Fatal(err)
	}
	for _, region := range []struct {
		name     string
		from, to int64
	}{{"data", 0, data}, {"zeros", data, data + hole}} {
		b.Run(region.name, func(b *testing.B) {
			f, err := l.Open("f")
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			ra := f.(io.ReaderAt)
			rng := rand.New(rand.NewPCG(1, 2))
			buf := make([]byte, 4<<10)
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if _, err := ra.ReadAt(buf, region.from+rng.Int64N(region.to-region.from-int64(len(buf)))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
