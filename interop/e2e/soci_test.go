package e2e

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/registry"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/toc/soci"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestConvertSOCIToRegistry converts a gzip image in docker-registry with
// lazylayer convert --soci and reads the result back over HTTP as a SOCI
// v2 puller does: an image index of the annotated manifest and its SOCI
// index, the zTOCs the index lists, no referrers (v2 binds by
// annotation), and the source's layers, config and tag untouched.
func TestConvertSOCIToRegistry(t *testing.T) {
	ctx := t.Context()
	reg := startRegistry(t)
	src := pushSource(t, reg, "e2e/soci", "src", sourceLayers())
	ll := buildLazylayer(t)
	c, err := registry.New()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := c.Repository(src.ref)
	if err != nil {
		t.Fatal(err)
	}
	srcDesc, err := repo.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var srcManifest ocispec.Manifest
	getJSON(t, repo, srcDesc, &srcManifest)

	dst := reg.Host() + "/e2e/soci:soci"
	ll.convert(t, src.ref, dst, "--soci", "--soci-min-layer-size", "1MiB", "--soci-span-size", "1MiB")

	out, err := c.Repository(dst)
	if err != nil {
		t.Fatal(err)
	}
	root, err := out.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if root.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("root %+v", root)
	}
	var idx ocispec.Index
	getJSON(t, out, root, &idx)
	if len(idx.Manifests) != 2 {
		t.Fatalf("image index %+v", idx.Manifests)
	}
	me, se := idx.Manifests[0], idx.Manifests[1]
	if me.MediaType != ocispec.MediaTypeImageManifest || me.ArtifactType != "" || me.Platform == nil ||
		me.Annotations[soci.AnnotationIndexDigest] != se.Digest.String() {
		t.Errorf("manifest entry %+v", me)
	}
	if se.MediaType != ocispec.MediaTypeImageManifest || se.ArtifactType != soci.MediaTypeIndexV2 || se.Platform == nil ||
		se.Annotations[soci.AnnotationImageManifestDigest] != me.Digest.String() {
		t.Errorf("SOCI index entry %+v", se)
	}

	var m ocispec.Manifest
	getJSON(t, out, me, &m)
	if m.Annotations[soci.AnnotationIndexDigest] != se.Digest.String() || m.Config.Digest != srcManifest.Config.Digest ||
		len(m.Layers) != len(srcManifest.Layers) {
		t.Fatalf("manifest %+v", m)
	}
	for i, l := range m.Layers {
		if l.Digest != srcManifest.Layers[i].Digest || l.MediaType != srcManifest.Layers[i].MediaType || l.Size != srcManifest.Layers[i].Size {
			t.Errorf("layer %d: %+v, source %+v", i, l, srcManifest.Layers[i])
		}
	}

	b, err := out.Manifest(ctx, se)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(b) != se.Digest {
		t.Fatal("SOCI index digest")
	}
	si, err := soci.DecodeIndexManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	arts, err := si.Match(m.Layers)
	if err != nil {
		t.Fatal(err)
	}
	indexed := 0
	for i, a := range arts {
		// Layers of 1 MiB and more are indexed, the others not.
		if big := m.Layers[i].Size >= 1<<20; big != (a.Ztoc != nil) {
			t.Errorf("layer %d of %d bytes: zTOC %v", i, m.Layers[i].Size, a.Ztoc)
		}
		if a.Ztoc == nil {
			continue
		}
		indexed++
		f, err := out.Blob(ctx, a.Ztoc.Descriptor)
		if err != nil {
			t.Fatal(err)
		}
		var zb []byte
		err = f.Fetch(ctx, []fetcher.Range{{Offset: 0, Length: a.Ztoc.Descriptor.Size}}, func(_ fetcher.Range, data []byte) error {
			zb = data
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		z, err := soci.Decode(zb)
		if err != nil || digest.FromBytes(zb) != a.Ztoc.Descriptor.Digest || z.CompressedArchiveSize != m.Layers[i].Size {
			t.Errorf("zTOC of layer %d: %v", i, err)
		}
	}
	if indexed == 0 {
		t.Error("no layer indexed")
	}
	// v2 needs no referrers; the source's tag still names the source.
	for _, d := range []ocispec.Descriptor{me, srcDesc} {
		refs, err := out.Referrers(ctx, d, "")
		if err != nil || len(refs) != 0 {
			t.Errorf("referrers of %s: %v, %v", d.Digest, refs, err)
		}
	}
	if again, err := repo.Resolve(ctx); err != nil || again.Digest != srcDesc.Digest {
		t.Errorf("source tag now %v, %v", again.Digest, err)
	}
}

func getJSON(t *testing.T, r *registry.Repository, d ocispec.Descriptor, v any) {
	t.Helper()
	b, err := r.Manifest(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// TestConvertSOCIOpensLazily converts a gzip image in docker-registry
// with "lazylayer convert --soci", into the registry and into an OCI
// layout, and opens both through image.Open: every layer by its zTOC,
// opening fetching the manifests, the SOCI index and the zTOCs only, the
// merged file system exactly the source's, every layer passing
// VerifyLayer; and "lazylayer verify", "ls" and "cat" on them.
func TestConvertSOCIOpensLazily(t *testing.T) {
	bin := buildLazylayer(t)
	reg := startRegistry(t)
	layers := foreignSourceLayers()
	src := reg.Host() + "/e2e/soci-src:v1"
	pushForeignSource(t, src, layers)
	// A small file costs the span that holds it: with soci's 4 MiB
	// spans, the whole upper layer, where etc/hostname is.
	_, upper := layerBlob(t, layers[1])
	small := int64(len(upper))

	dst := reg.Host() + "/e2e/soci-src:soci"
	bin.convert(t, src, dst, "--soci", "--soci-min-layer-size", "0")
	checkOpensLazily(t, dst, layers, toc.FormatSOCI, small)
	checkCommand(t, bin, dst, layers, toc.FormatSOCI)

	layout := "oci:" + filepath.Join(t.TempDir(), "layout") + ":soci"
	bin.convert(t, src, layout, "--soci", "--soci-min-layer-size", "0")
	checkOpensLazily(t, layout, layers, toc.FormatSOCI, small)
	checkCommand(t, bin, layout, layers, toc.FormatSOCI)
}
