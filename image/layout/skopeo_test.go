package layout_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/image/layout"
	"github.com/lazylayer/lazylayer/internal/tooltest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// newTarImage returns a one-layer image whose layer is a real tar and
// gzipped, whose config names its DiffID, as tools that check images want.
func newTarImage(t testing.TB) *testImage {
	t.Helper()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	data := "hello from lazylayer\n"
	if err := tw.WriteHeader(&tar.Header{Name: "etc/hello", Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(data))
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(layer.Bytes())
	zw.Close()
	im := newImage(t, gz.String())
	im.layerDesc.MediaType = ocispec.MediaTypeImageLayerGzip
	config := ocispec.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layer.Bytes())}}}
	config.OS, config.Architecture = "linux", "amd64"
	im.config, _ = json.Marshal(config)
	im.configDesc = descOf(ocispec.MediaTypeImageConfig, im.config)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: im.configDesc, Layers: []ocispec.Descriptor{im.layerDesc}}
	m.SchemaVersion = 2
	im.manifest, _ = json.Marshal(m)
	im.manifestDesc = descOf(ocispec.MediaTypeImageManifest, im.manifest)
	return im
}

// TestSkopeo: skopeo 1.9 reads a layout we wrote and copies it into one
// of its own, which we read: the manifest and the blobs arrive unchanged
// both ways, under the names given.
func TestSkopeo(t *testing.T) {
	skopeo := tooltest.Look(t, "skopeo", "skopeo")
	box := tooltest.NewSandbox(t)
	ours, theirs := box.Path("ours"), box.Path("theirs")
	im := newTarImage(t)
	im.push(t, open(t, ours, "v1"))

	raw := box.Run(t, nil, skopeo, "inspect", "--raw", "oci:"+ours+":v1")
	if strings.TrimSpace(raw) != string(im.manifest) {
		t.Errorf("skopeo inspect --raw = %s, want %s", raw, im.manifest)
	}
	box.Run(t, nil, skopeo, "copy", "oci:"+ours+":v1", "oci:"+theirs+":copied")
	im.check(t, open(t, theirs, "copied"))
	if _, err := open(t, theirs, "v1").Resolve(t.Context()); !errors.Is(err, layout.ErrNotFound) {
		t.Errorf("Resolve of a name skopeo was not given = %v, want ErrNotFound", err)
	}

	// skopeo adds the image under a second name; both names resolve,
	// and so does none, since both name one image.
	box.Run(t, nil, skopeo, "copy", "oci:"+ours+":v1", "oci:"+theirs+":again")
	im.check(t, open(t, theirs, "again"))
	im.check(t, open(t, theirs, ""))

	// Another image under a third name: now a name is needed.
	other := newImage(t, "other")
	other.push(t, open(t, ours, "other"))
	box.Run(t, nil, skopeo, "copy", "oci:"+ours+":other", "oci:"+theirs+":other")
	if _, err := open(t, theirs, "").Resolve(t.Context()); !errors.Is(err, layout.ErrAmbiguous) {
		t.Errorf("Resolve without a name of skopeo's layout of two images = %v, want ErrAmbiguous", err)
	}
}
