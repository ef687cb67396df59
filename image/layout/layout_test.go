package layout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/image/layout"
	"github.com/lazylayer/lazylayer/internal/imagetest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	_ image.Source = (*layout.Layout)(nil)
	_ image.Target = (*layout.Layout)(nil)
)

// testImage is a one-layer image: its blobs and their descriptors.
type testImage struct {
	config, layer, manifest             []byte
	configDesc, layerDesc, manifestDesc ocispec.Descriptor
}

func newImage(t testing.TB, layerData string) *testImage {
	t.Helper()
	im := &testImage{config: []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`), layer: []byte(layerData)}
	im.configDesc = descOf(ocispec.MediaTypeImageConfig, im.config)
	im.layerDesc = descOf(ocispec.MediaTypeImageLayer, im.layer)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: im.configDesc, Layers: []ocispec.Descriptor{im.layerDesc}}
	m.SchemaVersion = 2
	var err error
	if im.manifest, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	im.manifestDesc = descOf(ocispec.MediaTypeImageManifest, im.manifest)
	return im
}

func descOf(mediaType string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

// push writes im to dst and tags it.
func (im *testImage) push(t testing.TB, dst image.Target) {
	t.Helper()
	ctx := context.Background()
	for _, b := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{im.configDesc, im.config}, {im.layerDesc, im.layer}} {
		if err := dst.PushBlob(ctx, b.desc, bytes.NewReader(b.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.PushManifest(ctx, im.manifestDesc, im.manifest); err != nil {
		t.Fatal(err)
	}
	if err := dst.Tag(ctx, im.manifestDesc); err != nil {
		t.Fatal(err)
	}
}

// check reads im back from src.
func (im *testImage) check(t testing.TB, src image.Source) {
	t.Helper()
	ctx := context.Background()
	desc, err := src.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != im.manifestDesc.Digest || desc.Size != im.manifestDesc.Size {
		t.Fatalf("Resolve = %s (%d bytes), want %s", desc.Digest, desc.Size, im.manifestDesc.Digest)
	}
	got, err := src.Manifest(ctx, desc)
	if err != nil || !bytes.Equal(got, im.manifest) {
		t.Fatalf("Manifest = %q, %v", got, err)
	}
	for _, b := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{im.configDesc, im.config}, {im.layerDesc, im.layer}} {
		if got := imagetest.ReadBlob(t, src, b.desc); !bytes.Equal(got, b.data) {
			t.Errorf("blob %s = %q, want %q", b.desc.Digest, got, b.data)
		}
	}
}

func open(t testing.TB, dir, ref string, opts ...layout.Option) *layout.Layout {
	t.Helper()
	l, err := layout.Open(dir, ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "layout")
	im := newImage(t, "layer bytes")
	l := open(t, dir, "v1")
	if ok, err := l.Has(context.Background(), im.layerDesc); ok || err != nil {
		t.Fatalf("Has before the layout exists = %v, %v", ok, err)
	}
	im.push(t, l)
	im.check(t, l)
	im.check(t, open(t, dir, "v1"))
	im.check(t, open(t, dir, "")) // the only image
	if ok, err := l.Has(context.Background(), im.layerDesc); !ok || err != nil {
		t.Errorf("Has after the push = %v, %v", ok, err)
	}

	got, _ := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if string(got) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", got)
	}
	var idx ocispec.Index
	got, _ = os.ReadFile(filepath.Join(dir, "index.json"))
	if err := json.Unmarshal(got, &idx); err != nil || idx.SchemaVersion != 2 || len(idx.Manifests) != 1 ||
		idx.Manifests[0].Annotations[ocispec.AnnotationRefName] != "v1" {
		t.Errorf("index.json = %s, %v", got, err)
	}
	if tmp := tempFiles(t, dir); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

// tempFiles lists the files under dir that a push or Tag left behind.
func tempFiles(t testing.TB, dir string) []string {
	t.Helper()
	var tmp []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			tmp = append(tmp, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tmp
}

func TestPushBlobRefusesWrongContent(t *testing.T) {
	data := []byte("the blob")
	desc := descOf(ocispec.MediaTypeImageLayer, data)
	for name, r := range map[string]io.Reader{
		"short":   bytes.NewReader(data[:4]),
		"long":    io.MultiReader(bytes.NewReader(data), strings.NewReader("x")),
		"flipped": bytes.NewReader([]byte("the blub")),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, dir, "")
			err := l.PushBlob(context.Background(), desc, r)
			if !errors.Is(err, layout.ErrDigestMismatch) {
				t.Fatalf("PushBlob = %v, want ErrDigestMismatch", err)
			}
			if ok, _ := l.Has(context.Background(), desc); ok {
				t.Error("the blob is there after a failed push")
			}
			if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", desc.Digest.Encoded())); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a file under the digest: %v", err)
			}
			if tmp := tempFiles(t, dir); len(tmp) > 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
}

func TestPushBlobStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	data := []byte("the blob")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := open(t, dir, "").PushBlob(ctx, descOf("", data), bytes.NewReader(data))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("PushBlob = %v, want context.Canceled", err)
	}
	if tmp := tempFiles(t, dir); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

// TestConcurrentPushAndTag pushes one blob from many goroutines and tags
// as many names through as many Layouts of one directory: every name
// lands in index.json.
func TestConcurrentPushAndTag(t *testing.T) {
	dir := t.TempDir()
	im := newImage(t, "shared layer")
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			l, err := layout.Open(dir, fmt.Sprintf("tag%d", i))
			if err == nil {
				err = l.PushBlob(context.Background(), im.layerDesc, bytes.NewReader(im.layer))
			}
			if err == nil {
				err = l.PushManifest(context.Background(), im.manifestDesc, im.manifest)
			}
			if err == nil {
				err = l.Tag(context.Background(), im.manifestDesc)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if _, err := open(t, dir, fmt.Sprintf("tag%d", i)).Resolve(context.Background()); err != nil {
			t.Errorf("tag%d: %v", i, err)
		}
	}
	if tmp := tempFiles(t, dir); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func TestTag(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := newImage(t, "a"), newImage(t, "b")
	a.push(t, open(t, dir, "v1"))
	b.push(t, open(t, dir, "v1")) // replaces a as v1
	b.check(t, open(t, dir, "v1"))
	b.check(t, open(t, dir, ""))
	a.push(t, open(t, dir, "")) // unnamed
	a.push(t, open(t, dir, "")) // unnamed again: no second entry
	if _, err := open(t, dir, "").Resolve(ctx); !errors.Is(err, layout.ErrAmbiguous) {
		t.Errorf("Resolve without a name of two images = %v, want ErrAmbiguous", err)
	}
	var idx ocispec.Index
	got, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	if err := json.Unmarshal(got, &idx); err != nil || len(idx.Manifests) != 2 {
		t.Errorf("index.json = %s, %v; want two entries", got, err)
	}
	if err := open(t, dir, "v2").Tag(ctx, newImage(t, "c").manifestDesc); !errors.Is(err, layout.ErrNotFound) {
		t.Errorf("Tag of what was not pushed = %v, want ErrNotFound", err)
	}
}

// writeLayout writes a layout by hand: an oci-layout file and index.json.
func writeLayout(t testing.TB, index string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestResolveErrors(t *testing.T) {
	const (
		d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
		d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	)
	entry := func(d, ref string) string {
		if ref == "" {
			return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":10}`, ocispec.MediaTypeImageManifest, d)
		}
		return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":10,"annotations":{%q:%q}}`, ocispec.MediaTypeImageManifest, d, ocispec.AnnotationRefName, ref)
	}
	index := func(entries ...string) string {
		return `{"schemaVersion":2,"manifests":[` + strings.Join(entries, ",") + `]}`
	}
	for _, tc := range []struct {
		name, index, ref string
		want             error
	}{
		{"empty", index(), "", layout.ErrNotFound},
		{"no such name", index(entry(d1, "v1")), "v2", layout.ErrNotFound},
		{"two without a name", index(entry(d1, "v1"), entry(d2, "v2")), "", layout.ErrAmbiguous},
		{"one name twice", index(entry(d1, "v1"), entry(d2, "v1")), "v1", layout.ErrAmbiguous},
		{"not JSON", "{", "", layout.ErrInvalid},
		{"trailing data", index(entry(d1, "v1")) + "{}", "", layout.ErrInvalid},
		{"schema 1", `{"schemaVersion":1,"manifests":[]}`, "", layout.ErrInvalid},
		{"manifest media type", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]}`, "", layout.ErrInvalid},
		{"path in digest", index(entry("sha256:../../../etc/passwd", "")), "", layout.ErrInvalid},
		{"unknown algorithm", index(entry("md5:d41d8cd98f00b204e9800998ecf8427e", "")), "", layout.ErrInvalid},
		{"negative size", strings.Replace(index(entry(d1, "")), `"size":10`, `"size":-1`, 1), "", layout.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := open(t, writeLayout(t, tc.index), tc.ref).Resolve(context.Background())
			if !errors.Is(err, tc.want) {
				t.Errorf("Resolve = %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("same digest twice", func(t *testing.T) {
		got, err := open(t, writeLayout(t, index(entry(d1, "v1"), entry(d1, "v1"))), "v1").Resolve(context.Background())
		if err != nil || got.Digest != d1 {
			t.Errorf("Resolve = %v, %v", got.Digest, err)
		}
	})
	t.Run("index over the bound", func(t *testing.T) {
		l := open(t, writeLayout(t, index(entry(d1, "v1"))), "v1", layout.WithMaxIndexSize(20))
		if _, err := l.Resolve(context.Background()); !errors.Is(err, layout.ErrTooLarge) {
			t.Errorf("Resolve = %v, want ErrTooLarge", err)
		}
	})
	t.Run("not a layout", func(t *testing.T) {
		if _, err := open(t, t.TempDir(), "").Resolve(context.Background()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Resolve of an empty directory = %v, want ErrNotExist", err)
		}
	})
	t.Run("layout version 2", func(t *testing.T) {
		dir := writeLayout(t, index())
		os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"2.0.0"}`), 0o644)
		if _, err := layout.Open(dir, ""); !errors.Is(err, layout.ErrInvalid) {
			t.Errorf("Open = %v, want ErrInvalid", err)
		}
	})
}

func TestManifestChecks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	im := newImage(t, "layer")
	l := open(t, dir, "v1", layout.WithMaxManifestSize(int64(len(im.manifest))))
	im.push(t, l)

	big := im.manifestDesc
	big.Size = int64(len(im.manifest)) + 1
	if _, err := l.Manifest(ctx, big); !errors.Is(err, layout.ErrTooLarge) {
		t.Errorf("Manifest over the bound = %v, want ErrTooLarge", err)
	}
	path := filepath.Join(dir, "blobs", "sha256", im.manifestDesc.Digest.Encoded())
	flipped := bytes.Clone(im.manifest)
	flipped[0] = ' '
	if err := os.WriteFile(path, flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Manifest(ctx, im.manifestDesc); !errors.Is(err, layout.ErrDigestMismatch) {
		t.Errorf("Manifest of changed bytes = %v, want ErrDigestMismatch", err)
	}
	if _, err := l.Manifest(ctx, newImage(t, "other").manifestDesc); !errors.Is(err, layout.ErrNotFound) {
		t.Errorf("Manifest of a missing blob = %v, want ErrNotFound", err)
	}
	short := im.layerDesc
	short.Size--
	if _, err := l.Blob(ctx, short); !errors.Is(err, layout.ErrDigestMismatch) {
		t.Errorf("Blob of another size = %v, want ErrDigestMismatch", err)
	}
}

// TestBlobLinks: a blob may be a symbolic link within the layout, not
// one out of it.
func TestBlobLinks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	im := newImage(t, "layer")
	im.push(t, open(t, dir, "v1"))
	l := open(t, dir, "v1")
	blobs := filepath.Join(dir, "blobs", "sha256")

	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("secret"), 0o600)
	out := descOf("", []byte("secret"))
	if err := os.Symlink(secret, filepath.Join(blobs, out.Digest.Encoded())); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Blob(ctx, out); err == nil {
		t.Error("Blob followed a link out of the layout")
	}
	if ok, _ := l.Has(ctx, out); ok {
		t.Error("Has followed a link out of the layout")
	}

	in := descOf("", []byte("inside"))
	os.WriteFile(filepath.Join(dir, "inside"), []byte("inside"), 0o644)
	if err := os.Symlink("../../inside", filepath.Join(blobs, in.Digest.Encoded())); err != nil {
		t.Fatal(err)
	}
	if got := imagetest.ReadBlob(t, l, in); string(got) != "inside" {
		t.Errorf("Blob through a link within the layout = %q", got)
	}

}
