package archive_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/image/archive"
	"github.com/lazylayer/lazylayer/internal/imagetest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var _ image.Source = (*archive.Archive)(nil)

// entry is a member of a tar the tests make.
type entry struct {
	name, data string
	link       string // a symlink's target, if not empty
	hard       bool   // link is a hard link's
}

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}
		switch {
		case e.link != "" && e.hard:
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, e.link, 0
		case e.link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, e.link, 0
		case strings.HasSuffix(e.name, "/"):
			hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func open(t testing.TB, data []byte, ref string, opts ...archive.Option) *archive.Archive {
	t.Helper()
	a, err := archive.Open(writeFile(t, data), ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func gz(s string) string {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write([]byte(s))
	w.Close()
	return buf.String()
}

func hexOf(s string) string { return digest.FromString(s).Encoded() }

// layers of the test images: a plain tar and a gzipped one (not real
// tars: the archive does not look inside).
var (
	config = `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`
	plain  = "plain layer bytes"
	zipped = gz("gzipped layer bytes")
)

func manifestJSON(images ...string) entry {
	return entry{name: "manifest.json", data: "[" + strings.Join(images, ",") + "]"}
}

func image1(config string, tags []string, layers ...string) string {
	b, _ := json.Marshal(map[string]any{"Config": config, "RepoTags": tags, "Layers": layers})
	return string(b)
}

// checkDocker resolves a's image and checks it is the test image whose
// layers are plain then zipped.
func checkDocker(t *testing.T, a *archive.Archive) {
	t.Helper()
	desc, _, m := imagetest.Resolve(t, a)
	if desc.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("Resolve = %+v", desc)
	}
	want := []struct {
		mediaType, data string
	}{{ocispec.MediaTypeImageConfig, config}, {ocispec.MediaTypeImageLayer, plain}, {ocispec.MediaTypeImageLayerGzip, zipped}}
	got := append([]ocispec.Descriptor{m.Config}, m.Layers...)
	if m.SchemaVersion != 2 || len(got) != len(want) {
		t.Fatalf("manifest %+v", m)
	}
	for i, w := range want {
		if got[i].MediaType != w.mediaType || got[i].Digest != digest.FromString(w.data) || got[i].Size != int64(len(w.data)) {
			t.Errorf("descriptor %d = %+v, want %s of %q", i, got[i], w.mediaType, w.data)
		}
		if b := imagetest.ReadBlob(t, a, got[i]); string(b) != w.data {
			t.Errorf("blob %d = %q, want %q", i, b, w.data)
		}
	}
	again, err := a.Resolve(context.Background())
	if err != nil || again.Digest != desc.Digest {
		t.Errorf("second Resolve = %v, %v", again.Digest, err)
	}
}

// The archive flavours docker and podman write, by hand.
func TestDockerFlavours(t *testing.T) {
	id1, id2 := strings.Repeat("1", 64), strings.Repeat("2", 64)
	for name, entries := range map[string][]entry{
		// docker save before Docker 25: a directory per layer.
		"legacy": {
			{name: hexOf(config) + ".json", data: config},
			{name: id1 + "/"}, {name: id1 + "/VERSION", data: "1.0"}, {name: id1 + "/layer.tar", data: plain},
			{name: id2 + "/"}, {name: id2 + "/VERSION", data: "1.0"}, {name: id2 + "/layer.tar", data: zipped},
			{name: "repositories", data: `{"busybox":{"latest":"` + id2 + `"}}`},
			manifestJSON(image1(hexOf(config)+".json", []string{"busybox:latest"}, id1+"/layer.tar", id2+"/layer.tar")),
		},
		// Docker 25 and later: an OCI layout beside manifest.json.
		"docker 25": {
			{name: "blobs/"}, {name: "blobs/sha256/"},
			{name: "blobs/sha256/" + hexOf(config), data: config},
			{name: "blobs/sha256/" + hexOf(plain), data: plain},
			{name: "blobs/sha256/" + hexOf(zipped), data: zipped},
			{name: "index.json", data: `{"schemaVersion":2,"manifests":[]}`},
			{name: "oci-layout", data: `{"imageLayoutVersion":"1.0.0"}`},
			manifestJSON(image1("blobs/sha256/"+hexOf(config), []string{"busybox:latest"}, "blobs/sha256/"+hexOf(plain), "blobs/sha256/"+hexOf(zipped))),
		},
		// podman save: layers by digest, linked from per-layer
		// directories; here manifest.json names the links.
		"podman links": {
			{name: hexOf(plain) + ".tar", data: plain},
			{name: hexOf(zipped) + ".tar", data: zipped},
			{name: hexOf(config) + ".json", data: config},
			{name: id1 + "/layer.tar", link: "../" + hexOf(plain) + ".tar"},
			{name: "./" + id2 + "/layer.tar", link: hexOf(zipped) + ".tar", hard: true},
			manifestJSON(image1(hexOf(config)+".json", []string{"docker.io/library/busybox:latest"}, id1+"/layer.tar", id2+"/layer.tar")),
		},
	} {
		t.Run(name, func(t *testing.T) {
			data := makeTar(t, entries...)
			for _, ref := range []string{"", "busybox", "busybox:latest", "docker.io/library/busybox:latest", "@0"} {
				checkDocker(t, open(t, data, ref))
			}
			a, err := archive.New(bytes.NewReader(data), int64(len(data)), "busybox")
			if err != nil {
				t.Fatal(err)
			}
			checkDocker(t, a)
		})
	}
}

func TestOCIArchive(t *testing.T) {
	ctx := context.Background()
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString(config), Size: int64(len(config))},
		Layers: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString(zipped), Size: int64(len(zipped))}}}
	m.SchemaVersion = 2
	manifest, _ := json.Marshal(m)
	mdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(manifest), Size: int64(len(manifest)),
		Annotations: map[string]string{ocispec.AnnotationRefName: "localhost/app:v1"}}
	index, _ := json.Marshal(ocispec.Index{Versioned: m.Versioned, Manifests: []ocispec.Descriptor{mdesc}})
	data := makeTar(t,
		entry{name: "blobs/sha256/" + hexOf(config), data: config},
		entry{name: "blobs/sha256/" + hexOf(zipped), data: zipped},
		entry{name: "blobs/sha256/" + mdesc.Digest.Encoded(), data: string(manifest)},
		entry{name: "index.json", data: string(index)},
		entry{name: "oci-layout", data: `{"imageLayoutVersion":"1.0.0"}`},
	)
	for _, ref := range []string{"", "localhost/app:v1"} {
		a := open(t, data, ref)
		desc, err := a.Resolve(ctx)
		if err != nil || desc.Digest != mdesc.Digest {
			t.Fatalf("Resolve = %v, %v", desc.Digest, err)
		}
		if got, err := a.Manifest(ctx, desc); err != nil || !bytes.Equal(got, manifest) {
			t.Errorf("Manifest = %s, %v", got, err)
		}
		if got := imagetest.ReadBlob(t, a, m.Layers[0]); string(got) != zipped {
			t.Errorf("layer = %q", got)
		}
	}
	if _, err := archive.Open(writeFile(t, data), "v2"); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("Open of a name not there = %v, want ErrNotFound", err)
	}
	liar := ocispec.Descriptor{Digest: digest.FromString("liar"), Size: 5}
	a := open(t, append(makeTar(t, entry{name: "blobs/sha256/" + liar.Digest.Encoded(), data: "truth"})[:1024:1024], data...), "")
	if _, err := a.Manifest(ctx, liar); !errors.Is(err, archive.ErrDigestMismatch) {
		t.Errorf("Manifest of other bytes = %v, want ErrDigestMismatch", err)
	}
	if _, err := a.Manifest(ctx, ocispec.Descriptor{Digest: digest.FromString("x"), Size: 1}); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("Manifest of a missing blob = %v, want ErrNotFound", err)
	}
}

func TestOpenErrors(t *testing.T) {
	valid := []entry{
		{name: hexOf(config) + ".json", data: config},
		{name: "a/layer.tar", data: plain},
	}
	two := manifestJSON(image1(hexOf(config)+".json", []string{"a:1"}, "a/layer.tar"), image1(hexOf(config)+".json", []string{"b:1", "a:1"}))
	for _, tc := range []struct {
		name string
		data []byte
		ref  string
		opts []archive.Option
		want error
	}{
		{"not a tar", bytes.Repeat([]byte("not a tar "), 100), "", nil, archive.ErrNotArchive},
		{"empty file", nil, "", nil, archive.ErrNotArchive},
		{"no manifest", makeTar(t, valid...), "", nil, archive.ErrNotArchive},
		{"manifest not JSON", makeTar(t, append(valid, entry{name: "manifest.json", data: "{"})...), "", nil, archive.ErrInvalid},
		{"no images", makeTar(t, append(valid, manifestJSON())...), "", nil, archive.ErrNotFound},
		{"missing layer", makeTar(t, append(valid, manifestJSON(image1(hexOf(config)+".json", nil, "b/layer.tar")))...), "", nil, archive.ErrNotFound},
		{"missing config", makeTar(t, append(valid, manifestJSON(image1("c.json", nil, "a/layer.tar")))...), "", nil, archive.ErrNotFound},
		{"layer out of the archive", makeTar(t, append(valid, manifestJSON(image1(hexOf(config)+".json", nil, "../a/layer.tar")))...), "", nil, archive.ErrInvalid},
		{"link out of the archive", makeTar(t, append(valid, entry{name: "b/layer.tar", link: "../../etc/passwd"},
			manifestJSON(image1(hexOf(config)+".json", nil, "b/layer.tar")))...), "", nil, archive.ErrNotFound},
		{"absolute link", makeTar(t, append(valid, entry{name: "b/a/layer.tar", data: plain}, entry{name: "b/layer.tar", link: "/a/layer.tar"},
			manifestJSON(image1(hexOf(config)+".json", nil, "b/layer.tar")))...), "", nil, archive.ErrNotFound},
		{"links in a loop", makeTar(t, append(valid, entry{name: "x", link: "y"}, entry{name: "y", link: "x"},
			manifestJSON(image1(hexOf(config)+".json", nil, "x")))...), "", nil, archive.ErrInvalid},
		{"two images, no ref", makeTar(t, append(valid, two)...), "", nil, archive.ErrAmbiguous},
		{"one tag twice", makeTar(t, append(valid, two)...), "a:1", nil, archive.ErrAmbiguous},
		{"no such tag", makeTar(t, append(valid, two)...), "c:1", nil, archive.ErrNotFound},
		{"no such index", makeTar(t, append(valid, two)...), "@2", nil, archive.ErrNotFound},
		{"duplicate member", makeTar(t, append(valid, entry{name: "./a/layer.tar", data: "x"}, two)...), "b:1", nil, archive.ErrInvalid},
		{"too many members", makeTar(t, append(valid, two)...), "b:1", []archive.Option{archive.WithMaxMembers(2)}, archive.ErrTooLarge},
		{"manifest too large", makeTar(t, append(valid, two)...), "b:1", []archive.Option{archive.WithMaxManifestSize(10)}, archive.ErrTooLarge},
		{"long name", makeTar(t, append(valid, entry{name: strings.Repeat("n/", 300)}, two)...), "b:1", nil, archive.ErrInvalid},
		{"bad OCI index", makeTar(t, append(valid, entry{name: "index.json", data: `{"schemaVersion":2,"manifests":[{"digest":"sha256:../x"}]}`})...), "", nil, archive.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := archive.Open(writeFile(t, tc.data), tc.ref, tc.opts...)
			if !errors.Is(err, tc.want) {
				t.Errorf("Open = %v, want %v", err, tc.want)
			}
			if err == nil {
				a.Close()
			}
		})
	}

	t.Run("two images by index", func(t *testing.T) {
		if _, err := open(t, makeTar(t, append(valid, two)...), "@1").Resolve(context.Background()); err != nil {
			t.Error(err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		data := makeTar(t, append(valid, two)...)
		i := bytes.Index(data, []byte(plain))
		if _, err := archive.New(bytes.NewReader(data[:i+3]), int64(i+3), "b:1"); !errors.Is(err, archive.ErrInvalid) {
			t.Errorf("New of a cut archive = %v, want ErrInvalid", err)
		}
	})
}

func TestBlobErrors(t *testing.T) {
	ctx := context.Background()
	data := makeTar(t,
		entry{name: hexOf(config) + ".json", data: config},
		entry{name: "a/layer.tar", data: plain},
		manifestJSON(image1(hexOf(config)+".json", nil, "a/layer.tar")))
	a := open(t, data, "")
	if _, err := a.Blob(ctx, ocispec.Descriptor{Digest: digest.FromString("other"), Size: 5}); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("Blob of another digest = %v, want ErrNotFound", err)
	}
	if _, err := a.Blob(ctx, ocispec.Descriptor{Digest: digest.FromString(plain), Size: 1}); !errors.Is(err, archive.ErrDigestMismatch) {
		t.Errorf("Blob of another size = %v, want ErrDigestMismatch", err)
	}
	if _, err := a.Blob(ctx, ocispec.Descriptor{Digest: "sha256:../../x", Size: 1}); !errors.Is(err, archive.ErrInvalid) {
		t.Errorf("Blob of a bad digest = %v, want ErrInvalid", err)
	}
	if _, err := a.Manifest(ctx, ocispec.Descriptor{Digest: digest.FromString(plain), Size: 1}); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("Manifest of a layer = %v, want ErrNotFound", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := open(t, data, "").Resolve(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Resolve after cancel = %v", err)
	}
}
