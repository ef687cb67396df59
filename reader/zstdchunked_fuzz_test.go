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
// reports, list exactly the index's entries, in order, with only zeros
// after the end of the archive, and hold exactly the file contents the
// layer serves. The seed corpus (testdata/fuzz) holds small zstd:chunked
// blobs of our writer and damaged copies; the interop module's
// TestWriteZstdChunkedFuzzSeeds regenerates it.
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
		r := bytes.NewReader(out.Bytes())
		tr := tar.NewReader(r)
		entries := l.TOC().Entries
		last := make(map[string]int) // a name's last entry is the one the layer serves
		for i, e := range entries {
			last[e.Name] = i
		}
		for i := 0; ; i++ {
			hdr, err := tr.Next()
			if err == io.EOF {
				if i != len(entries) {
					t.Fatalf("the rebuilt tar lists %d entries, the index %d", i, len(entries))
				}
				break
			}
			if err != nil {
				t.Fatalf("the rebuilt tar fails after %d entries: %v", i, err)
			}
			name := path.Clean("/" + hdr.Name)[1:]
			if name == "" {
				name = "."
			}
			if i == len(entries) || entries[i].Name != name {
				t.Fatalf("the rebuilt tar lists %q as entry %d, beyond or other than the index's", hdr.Name, i)
			}
			if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 || last[name] != i {
				continue
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			served, err := l.ReadFile(name)
			if err != nil {
				t.Fatalf("%s: in the rebuilt tar, but ReadFile fails: %v", name, err)
			}
			if !bytes.Equal(served, data) {
				t.Fatalf("%s: rebuilt tar and ReadFile disagree", name)
			}
		}
		rest, _ := io.ReadAll(r)
		if bytes.Count(rest, []byte{0}) != len(rest) {
			t.Fatalf("non-zero bytes after the end of the rebuilt tar")
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
