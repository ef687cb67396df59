package convert_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lazylayer/lazylayer/convert"
	"github.com/lazylayer/lazylayer/toc/soci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// sociImage is a SOCI conversion as a reader sees it: the image index,
// and per image manifest its SOCI index.
type sociImage struct {
	index     ocispec.Index
	manifests []ocispec.Manifest
	entries   []ocispec.Descriptor // the manifests' entries
	socis     []*soci.IndexManifest
}

// checkSOCI reads the SOCI-converted image under root and checks it is
// bound the v2 way: each manifest entry annotated with its SOCI index,
// the SOCI index listed after the manifests with artifactType v2 and the
// manifest's digest, and each manifest annotated the same way.
func checkSOCI(t *testing.T, dst *memStore, root ocispec.Descriptor) sociImage {
	t.Helper()
	if root.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("root media type %q", root.MediaType)
	}
	var out sociImage
	dst.getJSON(root, &out.index)
	byDigest := make(map[string]ocispec.Descriptor)
	for _, e := range out.index.Manifests {
		if e.ArtifactType == "" {
			out.entries = append(out.entries, e)
			continue
		}
		if e.ArtifactType != soci.MediaTypeIndexV2 || e.MediaType != ocispec.MediaTypeImageManifest {
			t.Fatalf("entry %+v", e)
		}
		byDigest[e.Annotations[soci.AnnotationImageManifestDigest]] = e
	}
	if n := len(out.entries); n+len(byDigest) != len(out.index.Manifests) ||
		slices.ContainsFunc(out.index.Manifests[:n], func(e ocispec.Descriptor) bool { return e.ArtifactType != "" }) {
		t.Fatalf("SOCI indexes do not follow the manifests: %+v", out.index.Manifests)
	}
	for _, e := range out.entries {
		var m ocispec.Manifest
		dst.getJSON(e, &m)
		if m.MediaType != ocispec.MediaTypeImageManifest || m.Config.MediaType != ocispec.MediaTypeImageConfig {
			t.Errorf("manifest %s: media types %q, %q", e.Digest, m.MediaType, m.Config.MediaType)
		}
		out.manifests = append(out.manifests, m)
		se, ok := byDigest[e.Digest.String()]
		if !ok {
			out.socis = append(out.socis, nil)
			if _, ok := m.Annotations[soci.AnnotationIndexDigest]; ok {
				t.Errorf("manifest %s bound to an index the image index lacks", e.Digest)
			}
			continue
		}
		if m.Annotations[soci.AnnotationIndexDigest] != se.Digest.String() || e.Annotations[soci.AnnotationIndexDigest] != se.Digest.String() {
			t.Errorf("manifest %s: index digest %q, entry's %q, want %s", e.Digest,
				m.Annotations[soci.AnnotationIndexDigest], e.Annotations[soci.AnnotationIndexDigest], se.Digest)
		}
		if e.Platform == nil || se.Platform == nil || e.Platform.Architecture != se.Platform.Architecture {
			t.Errorf("platforms %+v and %+v", e.Platform, se.Platform)
		}
		b := dst.get(se)
		si, err := soci.DecodeIndexManifest(b)
		if err != nil {
			t.Fatal(err)
		}
		if si.Version != soci.IndexV2 || si.Annotations[soci.AnnotationBuildToolIdentifier] == "" {
			t.Errorf("SOCI index %+v", si)
		}
		if dst.get(ocispec.Descriptor{Digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}) == nil {
			t.Error("no SOCI index config")
		}
		if _, err := si.Match(m.Layers); err != nil {
			t.Error(err)
		}
		for _, z := range si.Ztocs {
			if _, err := soci.Decode(dst.get(z.Descriptor)); err != nil {
				t.Errorf("zTOC %s: %v", z.Descriptor.Digest, err)
			}
		}
		out.socis = append(out.socis, si)
	}
	return out
}

func TestImageSOCI(t *testing.T) {
	for _, mt := range []string{ocispec.MediaTypeImageManifest, dockerManifest} {
		t.Run(mt, func(t *testing.T) {
			src, dst := testImage(mt), newMemStore()
			var mu sync.Mutex
			notes := make(map[int]string)
			root, err := convert.Image(context.Background(), src, dst,
				convert.WithSOCI(convert.SOCIMinLayerSize(0), convert.SOCISpanSize(64<<10)),
				convert.WithProgress(func(p convert.Progress) {
					if p.Done {
						mu.Lock()
						notes[p.Index] = p.Note
						mu.Unlock()
					}
				}))
			if err != nil {
				t.Fatal(err)
			}
			if len(dst.tagged) != 1 || dst.tagged[0].Digest != root.Digest {
				t.Fatalf("tagged %v", dst.tagged)
			}
			img := checkSOCI(t, dst, root)
			if len(img.entries) != 1 || img.socis[0] == nil {
				t.Fatalf("image index %+v", img.index)
			}
			if p := img.entries[0].Platform; p == nil || p.OS != "linux" || p.Architecture != "amd64" {
				t.Errorf("platform %+v", p)
			}
			// The layers and the config are the source's.
			var sm ocispec.Manifest
			src.getJSON(src.root, &sm)
			m := img.manifests[0]
			if m.Config.Digest != sm.Config.Digest || len(m.Layers) != len(sm.Layers) {
				t.Fatalf("manifest %+v, source %+v", m, sm)
			}
			for i, l := range m.Layers {
				if l.Digest != sm.Layers[i].Digest || l.MediaType != sm.Layers[i].MediaType {
					t.Errorf("layer %d: %s %s, source %s %s", i, l.MediaType, l.Digest, sm.Layers[i].MediaType, sm.Layers[i].Digest)
				}
				if !bytes.Equal(dst.get(l), src.get(l)) {
					t.Errorf("layer %d not copied", i)
				}
			}
			// The gzip and the uncompressed layer are indexed, as the
			// indexer indexes them; the zstd one is not.
			si := img.socis[0]
			if len(si.Ztocs) != 2 || si.Ztocs[0].Layer != m.Layers[0].Digest || si.Ztocs[1].Layer != m.Layers[2].Digest {
				t.Fatalf("zTOCs %+v", si.Ztocs)
			}
			for i, l := range []int{0, 2} {
				comp := soci.Gzip
				if l == 2 {
					comp = soci.Uncompressed
				}
				z, err := soci.Index(context.Background(), bytes.NewReader(src.get(m.Layers[l])), comp, soci.WithSpanSize(64<<10))
				if err != nil {
					t.Fatal(err)
				}
				want, _ := soci.Encode(z)
				if !bytes.Equal(dst.get(si.Ztocs[i].Descriptor), want) {
					t.Errorf("zTOC of layer %d is not the indexer's", l)
				}
				if si.Ztocs[i].SpanSize != 64<<10 || si.Ztocs[i].LayerMediaType != m.Layers[l].MediaType {
					t.Errorf("zTOC %d: %+v", i, si.Ztocs[i])
				}
			}
			if !strings.Contains(notes[1], "zstd") || notes[0] != "" || notes[2] != "" {
				t.Errorf("notes %q", notes)
			}
			// The config plan (bin/run -> bin/app, its #! /bin/sh,
			// etc/passwd, etc/hosts, in every layer) becomes prefetch
			// artifacts of layers 0 and 2: layer 1 is not indexed.
			if len(si.Prefetches) != 2 || si.Prefetches[0].Layer != m.Layers[0].Digest || si.Prefetches[1].Layer != m.Layers[2].Digest {
				t.Fatalf("prefetch artifacts %+v", si.Prefetches)
			}
			spans, err := soci.DecodePrefetch(dst.get(si.Prefetches[0].Descriptor))
			if err != nil || len(spans) == 0 || spans[0].Start != 0 {
				t.Fatalf("prefetch spans %v, %v", spans, err)
			}
			if m.Annotations["io.github.lazylayer.prefetch.patterns"] == "" {
				t.Error("no patterns annotation")
			}
		})
	}
}

func TestImageSOCIIndex(t *testing.T) {
	src, dst := testIndex(), newMemStore()
	root, err := convert.Image(context.Background(), src, dst, convert.WithSOCI(convert.SOCIMinLayerSize(1)), convert.WithoutPrefetch())
	if err != nil {
		t.Fatal(err)
	}
	img := checkSOCI(t, dst, root)
	var archs []string
	for i, e := range img.entries {
		archs = append(archs, e.Platform.Architecture)
		if img.socis[i] == nil || len(img.socis[i].Prefetches) != 0 {
			t.Errorf("%s: SOCI index %+v", e.Platform.Architecture, img.socis[i])
		}
	}
	if !slices.Equal(archs, []string{"amd64", "arm64"}) || len(img.index.Manifests) != 4 {
		t.Fatalf("entries %+v", img.index.Manifests)
	}

	// Converting the result again changes nothing: its SOCI indexes are
	// left out and made anew, the same.
	again := newMemStore()
	dst.root = root
	root2, err := convert.Image(context.Background(), dst, again, convert.WithSOCI(convert.SOCIMinLayerSize(1)), convert.WithoutPrefetch())
	if err != nil {
		t.Fatal(err)
	}
	if root2.Digest != root.Digest {
		t.Errorf("converted again: %s, was %s", root2.Digest, root.Digest)
	}

	// An eStargz conversion of it leaves the SOCI indexes and bindings
	// out: they index the layers it rewrites.
	esgz := newMemStore()
	root3, err := convert.Image(context.Background(), dst, esgz, convert.WithoutPrefetch())
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	esgz.getJSON(root3, &idx)
	if len(idx.Manifests) != 2 {
		t.Fatalf("eStargz index %+v", idx.Manifests)
	}
	for _, e := range idx.Manifests {
		c := check(t, esgz, e)
		if _, ok := c.manifest.Annotations[soci.AnnotationIndexDigest]; ok {
			t.Error("eStargz manifest keeps the SOCI binding")
		}
		if _, ok := e.Annotations[soci.AnnotationIndexDigest]; ok {
			t.Error("eStargz manifest entry keeps the SOCI binding")
		}
	}
}

func TestImageSOCINothingToIndex(t *testing.T) {
	src, dst := testImage(ocispec.MediaTypeImageManifest), newMemStore()
	// Every layer is under the default 10 MiB.
	_, err := convert.Image(context.Background(), src, dst, convert.WithSOCI())
	if !errors.Is(err, convert.ErrNothingToIndex) {
		t.Fatalf("got %v, want ErrNothingToIndex", err)
	}
	if len(dst.tagged) != 0 {
		t.Fatal("tagged")
	}
}

func TestImageSOCIBadLayer(t *testing.T) {
	// A layer whose bytes are not its digest's fails the conversion,
	// and nothing is tagged, whichever of the layer's readers sees it.
	for _, prefetch := range []bool{false, true} {
		src := otherBlob()
		dst := newMemStore()
		opts := []convert.Option{convert.WithSOCI(convert.SOCIMinLayerSize(0))}
		if !prefetch {
			opts = append(opts, convert.WithoutPrefetch())
		}
		_, err := convert.Image(context.Background(), src, dst, opts...)
		if !errors.Is(err, convert.ErrMismatch) {
			t.Fatalf("prefetch %v: got %v, want ErrMismatch", prefetch, err)
		}
		if len(dst.tagged) != 0 {
			t.Fatal("tagged")
		}
	}
}
