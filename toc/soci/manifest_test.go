package soci

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	testLayerA = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("layer a"), Size: 20 << 20}
	testLayerB = ocispec.Descriptor{MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", Digest: digest.FromString("layer b"), Size: 30 << 20}
)

// testIndex returns a v2 index of zTOCs for layers a and b and a
// prefetch artifact for b, encoded.
func testIndex(t testing.TB) (*IndexManifest, []byte) {
	t.Helper()
	pf, err := EncodePrefetch([]PrefetchSpan{{Start: 0, End: 2}})
	if err != nil {
		t.Fatal(err)
	}
	m := &IndexManifest{
		Version:     IndexV2,
		Ztocs:       []ZtocRef{NewZtocRef([]byte("ztoc a"), testLayerA, DefaultSpanSize), NewZtocRef([]byte("ztoc b"), testLayerB, 1<<20)},
		Prefetches:  []PrefetchRef{NewPrefetchRef(pf, testLayerB.Digest)},
		Annotations: map[string]string{AnnotationBuildToolIdentifier: "lazylayer"},
	}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return m, b
}

func TestIndexManifestRoundTrip(t *testing.T) {
	m, b := testIndex(t)
	// The JSON soci writes: an OCI 1.0 manifest, config {} of the v2
	// media type, zTOCs then prefetch artifacts.
	want := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.amazon.soci.index.v2+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},` +
		`"layers":[{"mediaType":"application/octet-stream","digest":"` + digest.FromString("ztoc a").String() + `","size":6,"annotations":{` +
		`"com.amazon.soci.image-layer-digest":"` + testLayerA.Digest.String() + `","com.amazon.soci.image-layer-mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","com.amazon.soci.span-size":"4194304"}},`
	if !strings.HasPrefix(string(b), want) {
		t.Fatalf("encoded index\n%s\nwant prefix\n%s", b, want)
	}
	got, err := DecodeIndexManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != IndexV2 || len(got.Ztocs) != 2 || len(got.Prefetches) != 1 || got.Subject != nil ||
		got.Annotations[AnnotationBuildToolIdentifier] != "lazylayer" {
		t.Fatalf("decoded %+v", got)
	}
	for i, z := range got.Ztocs {
		w := m.Ztocs[i]
		if z.Layer != w.Layer || z.LayerMediaType != w.LayerMediaType || z.SpanSize != w.SpanSize ||
			z.Descriptor.Digest != w.Descriptor.Digest || z.Descriptor.Size != w.Descriptor.Size {
			t.Errorf("zTOC %d: %+v, want %+v", i, z, w)
		}
	}
	if p := got.Prefetches[0]; p.Layer != testLayerB.Digest || p.Descriptor.MediaType != MediaTypePrefetch {
		t.Errorf("prefetch %+v", p)
	}
	again, err := got.Encode()
	if err != nil || string(again) != string(b) {
		t.Fatalf("re-encoded: %v\n%s\n%s", err, again, b)
	}

	arts, err := got.Match([]ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("small"), Size: 5}, testLayerA, testLayerB})
	if err != nil {
		t.Fatal(err)
	}
	if arts[0].Ztoc != nil || arts[0].Prefetch != nil || arts[1].Ztoc.Layer != testLayerA.Digest || arts[1].Prefetch != nil ||
		arts[2].Ztoc.Layer != testLayerB.Digest || arts[2].Prefetch == nil {
		t.Fatalf("matched %+v", arts)
	}
}

func TestIndexManifestV1(t *testing.T) {
	_, b := testIndex(t)
	var w map[string]any
	json.Unmarshal(b, &w)
	w["config"].(map[string]any)["mediaType"] = MediaTypeIndexV1
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("image"), Size: 100}
	w["subject"] = subject
	v1, _ := json.Marshal(w)
	m, err := DecodeIndexManifest(v1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != IndexV1 || m.Subject == nil || m.Subject.Digest != subject.Digest || len(m.Ztocs) != 2 {
		t.Fatalf("decoded %+v", m)
	}
	if _, err := m.Encode(); !errors.Is(err, ErrInvalidIndex) {
		t.Fatalf("encoding v1: %v, want ErrInvalidIndex", err)
	}
}

// edit returns the test index with fn applied to its JSON form.
func edit(t *testing.T, fn func(w map[string]any)) []byte {
	t.Helper()
	_, b := testIndex(t)
	var w map[string]any
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	fn(w)
	out, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func layerAt(w map[string]any, i int) map[string]any { return w["layers"].([]any)[i].(map[string]any) }

func annotationsAt(w map[string]any, i int) map[string]any {
	return layerAt(w, i)["annotations"].(map[string]any)
}

func TestIndexManifestBad(t *testing.T) {
	many := make([]any, 3000)
	for i := range many {
		many[i] = map[string]any{"mediaType": "text/plain", "digest": digest.FromString("x").String(), "size": 1}
	}
	for _, tc := range []struct {
		name string
		b    []byte
		opts []Option
		want error
	}{
		{"not JSON", []byte("{"), nil, ErrInvalidIndex},
		{"trailing data", append(edit(t, func(map[string]any) {}), " {}"...), nil, ErrInvalidIndex},
		{"schema version", edit(t, func(w map[string]any) { w["schemaVersion"] = 1 }), nil, ErrInvalidIndex},
		{"manifest media type", edit(t, func(w map[string]any) { w["mediaType"] = ocispec.MediaTypeImageIndex }), nil, ErrInvalidIndex},
		{"no manifest media type", edit(t, func(w map[string]any) { delete(w, "mediaType") }), nil, ErrInvalidIndex},
		{"config media type", edit(t, func(w map[string]any) { w["config"].(map[string]any)["mediaType"] = ocispec.MediaTypeImageConfig }), nil, ErrInvalidIndex},
		{"v1 without subject", edit(t, func(w map[string]any) { w["config"].(map[string]any)["mediaType"] = MediaTypeIndexV1 }), nil, ErrInvalidIndex},
		{"config digest", edit(t, func(w map[string]any) { w["config"].(map[string]any)["digest"] = "sha256:00" }), nil, ErrInvalidIndex},
		{"no layer digest", edit(t, func(w map[string]any) { delete(annotationsAt(w, 0), AnnotationImageLayerDigest) }), nil, ErrInvalidIndex},
		{"bad layer digest", edit(t, func(w map[string]any) { annotationsAt(w, 0)[AnnotationImageLayerDigest] = "md5:abc" }), nil, ErrInvalidIndex},
		{"no layer media type", edit(t, func(w map[string]any) { delete(annotationsAt(w, 1), AnnotationImageLayerMediaType) }), nil, ErrInvalidIndex},
		{"span size", edit(t, func(w map[string]any) { annotationsAt(w, 1)[AnnotationSpanSize] = "-4" }), nil, ErrInvalidIndex},
		{"prefetch without layer", edit(t, func(w map[string]any) { delete(annotationsAt(w, 2), AnnotationImageLayerDigest) }), nil, ErrInvalidIndex},
		{"duplicate zTOC", edit(t, func(w map[string]any) {
			annotationsAt(w, 1)[AnnotationImageLayerDigest] = testLayerA.Digest.String()
		}), nil, ErrInvalidIndex},
		{"duplicate prefetch", edit(t, func(w map[string]any) { w["layers"] = append(w["layers"].([]any), layerAt(w, 2)) }), nil, ErrInvalidIndex},
		{"zTOC of size 0", edit(t, func(w map[string]any) { layerAt(w, 0)["size"] = 0 }), nil, ErrInvalidIndex},
		{"zTOC digest", edit(t, func(w map[string]any) { layerAt(w, 0)["digest"] = "sha256:zz" }), nil, ErrInvalidIndex},
		{"huge zTOC", edit(t, func(w map[string]any) { layerAt(w, 0)["size"] = int64(1) << 40 }), nil, ErrIndexTooLarge},
		{"huge prefetch", edit(t, func(w map[string]any) { layerAt(w, 2)["size"] = 2 << 20 }), nil, ErrIndexTooLarge},
		{"huge count", edit(t, func(w map[string]any) { w["layers"] = many }), nil, ErrIndexTooLarge},
		{"huge index", edit(t, func(map[string]any) {}), []Option{WithMaxIndexSize(100)}, ErrIndexTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeIndexManifest(tc.b, tc.opts...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if len(err.Error()) > 600 {
				t.Errorf("error of %d bytes", len(err.Error()))
			}
		})
	}
}

func TestIndexManifestUnknownBlobs(t *testing.T) {
	b := edit(t, func(w map[string]any) {
		w["layers"] = append(w["layers"].([]any), map[string]any{"mediaType": "application/x-future", "digest": digest.FromString("f").String(), "size": 3})
	})
	m, err := DecodeIndexManifest(b)
	if err != nil || len(m.Ztocs) != 2 || len(m.Prefetches) != 1 {
		t.Fatalf("%+v, %v", m, err)
	}
}

func TestIndexManifestMatchBad(t *testing.T) {
	m, _ := testIndex(t)
	other := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("other"), Size: 20 << 20}
	for _, tc := range []struct {
		name   string
		layers []ocispec.Descriptor
	}{
		{"zTOC of a layer the image lacks", []ocispec.Descriptor{other, testLayerB}},
		{"prefetch of a layer the image lacks", []ocispec.Descriptor{testLayerA}},
		{"layer media type", []ocispec.Descriptor{testLayerA, {MediaType: ocispec.MediaTypeImageLayer, Digest: testLayerB.Digest, Size: testLayerB.Size}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := *m
			if tc.name == "prefetch of a layer the image lacks" {
				m.Ztocs = m.Ztocs[:1]
			}
			if _, err := m.Match(tc.layers); !errors.Is(err, ErrInvalidIndex) {
				t.Fatalf("got %v, want ErrInvalidIndex", err)
			}
		})
	}
	// A layer the image has twice gets the zTOC at both places.
	arts, err := m.Match([]ocispec.Descriptor{testLayerA, testLayerB, testLayerA})
	if err != nil || arts[0].Ztoc == nil || arts[2].Ztoc != arts[0].Ztoc {
		t.Fatalf("%+v, %v", arts, err)
	}
}

func TestIndexDescriptor(t *testing.T) {
	_, b := testIndex(t)
	p := &ocispec.Platform{OS: "linux", Architecture: "arm64"}
	man := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 9, Platform: p}
	d := IndexDescriptor(b, man)
	if d.MediaType != ocispec.MediaTypeImageManifest || d.ArtifactType != MediaTypeIndexV2 || d.Digest != digest.FromBytes(b) ||
		d.Size != int64(len(b)) || d.Platform != p || d.Annotations[AnnotationImageManifestDigest] != man.Digest.String() {
		t.Fatalf("%+v", d)
	}
}

func TestPrefetchArtifact(t *testing.T) {
	b, err := EncodePrefetch([]PrefetchSpan{{Start: 1, End: 3}, {Start: 7, End: 7}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"version":"1.0","prefetch_spans":[{"start_span":1,"end_span":3},{"start_span":7,"end_span":7}]}`; string(b) != want {
		t.Fatalf("%s, want %s", b, want)
	}
	spans, err := DecodePrefetch(b)
	if err != nil || len(spans) != 2 || spans[1] != (PrefetchSpan{Start: 7, End: 7}) {
		t.Fatalf("%v, %v", spans, err)
	}
	for _, tc := range []struct {
		name string
		b    string
		opts []Option
		want error
	}{
		{"version", `{"version":"2.0","prefetch_spans":[{"start_span":1,"end_span":3}]}`, nil, ErrInvalidIndex},
		{"empty", `{"version":"1.0","prefetch_spans":[]}`, nil, ErrInvalidIndex},
		{"reversed", `{"version":"1.0","prefetch_spans":[{"start_span":3,"end_span":1}]}`, nil, ErrInvalidIndex},
		{"negative", `{"version":"1.0","prefetch_spans":[{"start_span":-1,"end_span":1}]}`, nil, ErrInvalidIndex},
		{"not a number", `{"version":"1.0","prefetch_spans":[{"start_span":"a","end_span":1}]}`, nil, ErrInvalidIndex},
		{"over int32", `{"version":"1.0","prefetch_spans":[{"start_span":0,"end_span":4294967296}]}`, nil, ErrInvalidIndex},
		{"span over the limit", `{"version":"1.0","prefetch_spans":[{"start_span":0,"end_span":70000}]}`, nil, ErrIndexTooLarge},
		{"too many ranges", `{"version":"1.0","prefetch_spans":[{"start_span":0,"end_span":1},{"start_span":3,"end_span":4}]}`, []Option{WithMaxSpans(1)}, ErrIndexTooLarge},
		{"too large", string(b), []Option{WithMaxPrefetchSize(10)}, ErrIndexTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodePrefetch([]byte(tc.b), tc.opts...); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := EncodePrefetch(nil); !errors.Is(err, ErrInvalidIndex) {
		t.Fatalf("encoding no span: %v", err)
	}
}

func TestPrefetchSpans(t *testing.T) {
	starts := []int64{0, 100, 250, 400}
	got := PrefetchSpans(starts, []ByteRange{
		{Offset: 260, Length: 10}, // span 2
		{Offset: 0, Length: 100},  // spans 0 to 1: soci counts the span holding o+n
		{Offset: 500, Length: 50}, // the last span
	})
	want := []PrefetchSpan{{Start: 0, End: 3}}
	if len(got) != 1 || got[0] != want[0] {
		t.Fatalf("%v, want %v", got, want)
	}
	got = PrefetchSpans(starts, []ByteRange{{Offset: 410, Length: 1}, {Offset: 10, Length: 5}})
	if len(got) != 2 || got[0] != (PrefetchSpan{0, 0, 0}) || got[1] != (PrefetchSpan{3, 3, 0}) {
		t.Fatalf("%v", got)
	}
	if PrefetchSpans(starts, nil) != nil || PrefetchSpans(nil, []ByteRange{{1, 2}}) != nil {
		t.Fatal("spans of nothing")
	}
}

func TestSpanStarts(t *testing.T) {
	data := kindsTar(t)
	z := index(t, data, Uncompressed, WithSpanSize(1024))
	starts, err := z.SpanStarts()
	if err != nil || len(starts) != int(z.MaxSpanID)+1 || starts[1] != 1024 {
		t.Fatalf("%v, %v", starts, err)
	}
	z = index(t, gzipMembers(t, 6, data), Gzip, WithSpanSize(1024))
	starts, err = z.SpanStarts()
	if err != nil || len(starts) != int(z.MaxSpanID)+1 || starts[0] != 0 {
		t.Fatalf("%v, %v", starts, err)
	}
	for i := 1; i < len(starts); i++ {
		if starts[i] <= starts[i-1] {
			t.Fatalf("starts %v do not increase", starts)
		}
	}
}
