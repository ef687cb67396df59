package interop

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/interop/internal/corpus"
	"github.com/lazylayer/lazylayer/toc"
)

// TestWriteZstdChunkedFuzzSeeds regenerates the zstd:chunked seeds of the
// reader's fuzz targets from blobs of our writer when
// LAZYLAYER_WRITE_SEEDS=1; otherwise it does nothing. The seeds hold a
// zeros chunk, a multi-chunk file, a hard link and "./" names, plus copies
// damaged in the data, the TOC, the tar-split and the footer.
func TestWriteZstdChunkedFuzzSeeds(t *testing.T) {
	if os.Getenv("LAZYLAYER_WRITE_SEEDS") != "1" {
		t.Skip("set LAZYLAYER_WRITE_SEEDS=1 to rewrite reader/testdata/fuzz")
	}
	random := make([]byte, 600)
	for i := range random {
		random[i] = byte(i*7 + i/13)
	}
	holes := append(append(bytes.Clone(random[:300]), make([]byte, 2048)...), random[300:]...)
	small, err := corpus.WriteTar([]corpus.Entry{
		{Header: &tar.Header{Typeflag: tar.TypeDir, Name: "./etc/", Mode: 0o755}},
		{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "./etc/hostname", Mode: 0o644, Size: 5}, Content: []byte("lazy\n")},
		{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "./etc/holes", Mode: 0o644, Size: int64(len(holes)), Format: tar.FormatPAX}, Content: holes},
		{Header: &tar.Header{Typeflag: tar.TypeLink, Name: "./etc/h", Linkname: "./etc/hostname"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := buildOurZstdChunked(t, small)
	f, err := zstdchunked.ParseFooter(blob[len(blob)-toc.MaxFooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	flip := func(at int64) []byte {
		b := bytes.Clone(blob)
		b[at] ^= 0x5a
		return b
	}
	seeds := map[string]map[string][]byte{
		"FuzzWriteTar": {
			"ours":                blob,
			"ours-flipped-data":   flip(int64(len(blob)) / 4),
			"ours-flipped-toc":    flip(f.TOCOffset + f.TOCLength/2),
			"ours-flipped-split":  flip(f.TarSplitOffset + f.TarSplitLength/2),
			"ours-flipped-footer": flip(int64(len(blob)) - 20),
			"ours-truncated":      blob[:len(blob)-1],
		},
		"FuzzOpenAndReadAll": {
			"ours-zstd-chunked": blob,
		},
	}
	for target, files := range seeds {
		dir := filepath.Join("..", "reader", "testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range files {
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
