package interop

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path"
	"testing"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/lazylayer/lazylayer/reader"
	digest "github.com/opencontainers/go-digest"
)

// TestSociZtocThroughReader opens every corpus layer with the zTOC
// soci-snapshotter's own builder makes, through our reader: every file
// reads back as the tar holds it, and the whole checks (FetchAll,
// WriteTar, WithRequireLayerDigest) find the tar to be exactly what the
// zTOC lists.
func TestSociZtocThroughReader(t *testing.T) {
	for _, l := range sociLayers(t) {
		t.Run(l.name, func(t *testing.T) {
			theirs := theirZtoc(t, l)
			blob, err := os.Open(l.path)
			if err != nil {
				t.Fatal(err)
			}
			defer blob.Close()
			st, err := blob.Stat()
			if err != nil {
				t.Fatal(err)
			}
			open := func(opts ...reader.Option) (*reader.Layer, error) {
				f := fetcher.FromReaderAt(blob, st.Size())
				return reader.Open(context.Background(), f, append([]reader.Option{reader.WithZtoc(theirs)}, opts...)...)
			}
			layer, err := open()
			if err != nil {
				t.Fatalf("open with soci's zTOC: %v", err)
			}
			defer layer.Close()
			want := tartest.FileContents(t, l.tar)
			// In the tar's order, as a walk of the tree would, not the
			// map's random one: each read then decodes spans the reader
			// has just decoded for the one before, instead of a span
			// for every file (minutes over GOROOT).
			for _, name := range tarOrder(t, l.tar) {
				data, ok := want[name]
				if !ok {
					continue
				}
				got, err := layer.ReadFile(name)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("ReadFile(%q) through soci's zTOC: %d bytes, %v; want %d bytes", name, len(got), err, len(data))
				}
			}

			cached, err := open(reader.WithCache(cache.NewMemory(1 << 30)))
			if err != nil {
				t.Fatal(err)
			}
			defer cached.Close()
			if err := cached.FetchAll(context.Background()); err != nil {
				t.Fatalf("FetchAll: %v", err)
			}
			out := &sameBytes{want: l.tar}
			diffID, err := layer.WriteTar(context.Background(), out)
			if err != nil || !out.whole() || diffID != digest.FromBytes(l.tar) {
				t.Fatalf("WriteTar: %d bytes, %v; want the %d-byte tar", out.n, err, len(l.tar))
			}
			if _, err := blob.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			blobDigest, err := digest.FromReader(blob)
			if err != nil {
				t.Fatal(err)
			}
			required, err := open(reader.WithLayerDigest(blobDigest), reader.WithRequireLayerDigest())
			if err != nil {
				t.Fatalf("open with WithRequireLayerDigest: %v", err)
			}
			required.Close()
		})
	}
}

// sameBytes is a writer that checks what it is written is want, without
// holding it.
type sameBytes struct {
	want []byte
	n    int
	bad  bool
}

func (s *sameBytes) Write(p []byte) (int, error) {
	if len(p) > len(s.want)-s.n || !bytes.Equal(p, s.want[s.n:s.n+len(p)]) {
		s.bad = true
	}
	s.n += len(p)
	return len(p), nil
}

// whole reports whether want was written, all of it and nothing else.
func (s *sameBytes) whole() bool { return !s.bad && s.n == len(s.want) }

// tarOrder returns the cleaned names of tar's entries, in order, each once.
func tarOrder(t *testing.T, data []byte) []string {
	t.Helper()
	var names []string
	seen := make(map[string]bool)
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		if name := path.Clean("/" + h.Name)[1:]; !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
}
