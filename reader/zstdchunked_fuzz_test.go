package reader

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// FuzzWriteTar opens arbitrary bytes as a layer blob and rebuilds its tar.
// Nothing may panic or hang; a rebuilt tar must have the digest WriteTar
// reports, and hold exactly the file contents the layer serves. The seed
// corpus (testdata/fuzz) holds small zstd:chunked blobs of our writer and
// damaged copies; the interop module's TestWriteZstdChunkedFuzzSeeds
// regenerates it.
func FuzzWriteTar(f *testing.F) {
	f.Fuzz(func(t *testing.T, blob []byte) {
		ctx := context.Background()
		l := openFuzzed(t, blob)
		if l == nil {
			return
		}
		defer l.Close()
		var out bytes.Buffer
		d, err := l.WriteTar(ctx, &out)
		if err != nil {
			return
		}
		if got := digest.FromBytes(out.Bytes()); got != d {
			t.Fatalf("WriteTar reports %s for a tar with digest %s", d, got)
		}
		tr := tar.NewReader(&out)
		for {
			hdr, err := tr.Next()
			if err != nil {
				return // what follows the headers the TOC matched is not ours to judge
			}
			if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
				continue
			}
			name := path.Clean("/" + hdr.Name)[1:]
			data, err := io.ReadAll(tr)
			if err != nil {
				return
			}
			served, err := l.ReadFile(name)
			if err != nil {
				t.Fatalf("%s: in the rebuilt tar, but ReadFile fails: %v", name, err)
			}
			if !bytes.Equal(served, data) {
				t.Fatalf("%s: rebuilt tar and ReadFile disagree", name)
			}
		}
	})
}

// TestFuzzWriteTarSeedsAreZstdChunked keeps the seed corpus meaningful: its
// first seed must open as zstd:chunked and rebuild its tar.
func TestFuzzWriteTarSeedsAreZstdChunked(t *testing.T) {
	data, err := readSeed("testdata/fuzz/FuzzWriteTar/ours")
	if err != nil {
		t.Skipf("no seed: %v", err)
	}
	l, err := Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(data), int64(len(data))))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.TOC().Format != toc.FormatZstdChunked {
		t.Fatalf("seed is %v", l.TOC().Format)
	}
	if _, err := l.WriteTar(context.Background(), io.Discard); err != nil {
		t.Fatal(err)
	}
}

// readSeed decodes a one-value []byte corpus file ("go test fuzz v1").
func readSeed(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	lines := strings.SplitN(string(b), "\n", 3)
	if len(lines) < 2 || lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("%s: not a fuzz corpus file", name)
	}
	quoted, ok := strings.CutPrefix(strings.TrimSpace(lines[1]), "[]byte(")
	if !ok {
		return nil, fmt.Errorf("%s: not a []byte value", name)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(quoted, ")"))
	return []byte(s), err
}
