package image

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	fuzzOnce  sync.Once
	fuzzImage testImage
)

// FuzzOpenManifest opens an image whose root manifest or index, and a
// second document it may name as a manifest or config, are arbitrary
// bytes. Placeholders let the fuzzer refer to content by digest: @SECOND@
// becomes the digest and size of the second document, @CONFIG@ and
// @LAYER@ those of a valid config and layer. Open must not panic, and
// its errors stay short.
func FuzzOpenManifest(f *testing.F) {
	f.Fuzz(func(t *testing.T, root, second []byte) {
		fuzzOnce.Do(func() {
			fuzzImage = testImage{layers: []testLayer{makeLayer(t, eStargz, tarOf(t, tfile{name: "a", data: "a"}))}}
		})
		s := &memSource{}
		m := fuzzImage.store(t, s, nil)
		var mf ocispec.Manifest
		if err := jsonUnmarshal(s.blobs[m.Digest], &mf); err != nil {
			t.Fatal(err)
		}
		fields := func(d digest.Digest, size int64) []byte {
			return fmt.Appendf(nil, `"digest":%q,"size":%d`, d, size)
		}
		replace := func(b []byte) []byte {
			b = bytes.ReplaceAll(b, []byte("@CONFIG@"), fields(mf.Config.Digest, mf.Config.Size))
			return bytes.ReplaceAll(b, []byte("@LAYER@"), fields(mf.Layers[0].Digest, mf.Layers[0].Size))
		}
		second = replace(second)
		d2 := s.add(second)
		root = bytes.ReplaceAll(replace(root), []byte("@SECOND@"), fields(d2, int64(len(second))))
		s.root = ocispec.Descriptor{Digest: s.add(root), Size: int64(len(root))}
		img, err := Open(context.Background(), s, WithPlatform("linux/amd64"))
		if err != nil {
			if len(err.Error()) > 4096 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		img.FS()
		img.Close()
	})
}
