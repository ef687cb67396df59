package image

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"sync"
	"testing"

	"github.com/lazylayer/lazylayer/toc/soci"
)

var (
	fuzzSOCIOnce  sync.Once
	fuzzSOCILayer testLayer
	fuzzSOCIZtoc  []byte
)

// FuzzOpenSOCI opens an image whose manifest names, by its annotation,
// a SOCI index of arbitrary bytes, which may list a prefetch artifact of
// arbitrary bytes. Placeholders let the fuzzer refer to content:
// @ZTOC@ becomes the digest and size of the layer's real zTOC,
// @PREFETCH@ those of the prefetch artifact, @LAYER@ the layer's digest.
// Open, Plan and reading every file must not panic, and errors stay
// short.
func FuzzOpenSOCI(f *testing.F) {
	ztocRef := `{"mediaType":"application/octet-stream",@ZTOC@,"annotations":{"com.amazon.soci.image-layer-digest":"@LAYER@","com.amazon.soci.image-layer-mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","com.amazon.soci.span-size":"65536"}}`
	prefetchRef := `{"mediaType":"application/vnd.amazon.soci.prefetch.v1+json",@PREFETCH@,"annotations":{"com.amazon.soci.image-layer-digest":"@LAYER@"}}`
	index := func(layers string) string {
		return `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.amazon.soci.index.v2+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[` + layers + `]}`
	}
	f.Add([]byte(index(ztocRef)), []byte(nil))
	f.Add([]byte(index(ztocRef+","+prefetchRef)), []byte(`{"version":"1.0","prefetch_spans":[{"start_span":0,"end_span":1}]}`))
	f.Add([]byte(index(ztocRef+","+prefetchRef)), []byte(`{"version":"1.0","prefetch_spans":[{"start_span":2,"end_span":9}]}`))
	f.Fuzz(func(t *testing.T, index, prefetchArtifact []byte) {
		fuzzSOCIOnce.Do(func() {
			tarData, _ := sociTree(t, 5, 8)
			fuzzSOCILayer = makeLayer(t, plainGzip, tarData)
			fuzzSOCIZtoc = makeSOCIIndex(t, &memSource{}, []testLayer{fuzzSOCILayer}, []int{0}, nil).ztoc(t, 0)
		})
		s := &memSource{}
		fields := func(b []byte) []byte { return fmt.Appendf(nil, `"digest":%q,"size":%d`, s.add(b), len(b)) }
		index = bytes.ReplaceAll(index, []byte("@ZTOC@"), fields(fuzzSOCIZtoc))
		index = bytes.ReplaceAll(index, []byte("@PREFETCH@"), fields(prefetchArtifact))
		index = bytes.ReplaceAll(index, []byte("@LAYER@"), []byte(fuzzSOCILayer.desc.Digest))
		img := testImage{layers: []testLayer{fuzzSOCILayer}, annotations: map[string]string{soci.AnnotationIndexDigest: string(s.add(index))}}
		s.root = img.store(t, s, nil)
		s.add(soci.EmptyConfig())
		short := func(err error) {
			if err != nil && len(err.Error()) > 4096 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
		}
		opened, err := Open(context.Background(), s)
		if err != nil {
			short(err)
			return
		}
		defer opened.Close()
		short(opened.Err())
		_, err = opened.Plan(context.Background())
		short(err)
		root, err := opened.FS()
		if err != nil {
			return
		}
		fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				_, err = fs.ReadFile(root, name)
				short(err)
			}
			return nil
		})
	})
}

// ztoc returns the encoded zTOC of layer i.
func (a sociArtifacts) ztoc(t testing.TB, i int) []byte { return mustEncode(t, a.ztocs[i]) }
