package interop

import (
	"bytes"
	"context"
	"os"
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
			blob, err := os.ReadFile(l.path)
			if err != nil {
				t.Fatal(err)
			}
			open := func(opts ...reader.Option) (*reader.Layer, error) {
				f := fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))
				return reader.Open(context.Background(), f, append([]reader.Option{reader.WithZtoc(theirs)}, opts...)...)
			}
			layer, err := open()
			if err != nil {
				t.Fatalf("open with soci's zTOC: %v", err)
			}
			defer layer.Close()
			want := tartest.FileContents(t, l.tar)
			for name, data := range want {
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
			var out bytes.Buffer
			diffID, err := layer.WriteTar(context.Background(), &out)
			if err != nil || !bytes.Equal(out.Bytes(), l.tar) || diffID != digest.FromBytes(l.tar) {
				t.Fatalf("WriteTar: %d bytes, %v; want the %d-byte tar", out.Len(), err, len(l.tar))
			}
			required, err := open(reader.WithLayerDigest(digest.FromBytes(blob)), reader.WithRequireLayerDigest())
			if err != nil {
				t.Fatalf("open with WithRequireLayerDigest: %v", err)
			}
			required.Close()
		})
	}
}
