package interop

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/interop/internal/corpus"
)

// TestWriteReaderFuzzSeeds regenerates the seed corpus of the reader's
// FuzzOpenAndReadAll from reference-built blobs when
// LAZYLAYER_WRITE_SEEDS=1; otherwise it does nothing.
func TestWriteReaderFuzzSeeds(t *testing.T) {
	if os.Getenv("LAZYLAYER_WRITE_SEEDS") != "1" {
		t.Skip("set LAZYLAYER_WRITE_SEEDS=1 to rewrite reader/testdata/fuzz")
	}
	dir := filepath.Join("..", "reader", "testdata", "fuzz", "FuzzOpenAndReadAll")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	small, err := corpus.WriteTar([]corpus.Entry{
		{Header: dirHeader("etc/")},
		{Header: fileHeader("etc/hostname", 5), Content: []byte("lazy\n")},
		{Header: fileHeader("etc/a", 3), Content: []byte("abc")},
		{Header: fileHeader("etc/b", 300), Content: bytes.Repeat([]byte("b"), 300)},
		{Header: linkHeader("etc/h", "etc/b")},
	})
	if err != nil {
		t.Fatal(err)
	}
	seeds := map[string][]byte{}
	add := func(name string, blob []byte) { seeds[name] = blob }
	plain, _ := referenceBlob(t, small)
	add("plain", plain)
	chunked, _ := referenceBlob(t, small, estargz.WithChunkSize(100))
	add("chunked", chunked)
	shared, _ := referenceBlob(t, small, estargz.WithMinChunkSize(1<<10), estargz.WithChunkSize(128))
	add("min-chunk", shared)
	prio, _ := referenceBlob(t, small, estargz.WithPrioritizedFiles([]string{"etc/b"}), estargz.WithCompressionLevel(0))
	add("prioritized-stored", prio)
	zc, _ := referenceZstdChunkedBlob(t, small, zstd.SpeedFastest, estargz.WithChunkSize(100))
	add("zstd-chunked", zc)
	zcBad := bytes.Clone(zc)
	zcBad[len(zc)/3] ^= 0x5a
	add("zstd-chunked-flipped", zcBad)
	for i, at := range []int{len(plain) / 3, len(plain) / 2, len(plain) - 60, len(plain) - 20, len(plain) - 3} {
		bad := bytes.Clone(plain)
		bad[at] ^= 0x5a
		add(fmt.Sprintf("flipped-%d", i), bad)
	}
	add("truncated-tail", plain[:len(plain)-10])
	add("truncated-head", plain[len(plain)/2:])
	add("footer-only", plain[len(plain)-51:])
	add("empty", nil)
	for name, blob := range seeds {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", blob)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func dirHeader(name string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, Format: tar.FormatPAX}
}

func fileHeader(name string, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, Format: tar.FormatPAX}
}

func linkHeader(name, target string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Format: tar.FormatPAX}
}
