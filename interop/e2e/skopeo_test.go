package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/tooltest"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestSkopeoCopyKeepsOurImage copies our image with skopeo 1.9 from one
// registry to another and into an OCI layout. The manifest arrives byte
// for byte (so with its digest and every annotation), and so does the
// layer; our reader then opens the copy in the second registry lazily,
// trusting only the annotations of the copied manifest.
func TestSkopeoCopyKeepsOurImage(t *testing.T) {
	skopeo := tooltest.Look(t, "skopeo", "skopeo")
	box := tooltest.NewSandbox(t)
	src, dst := startRegistry(t), startRegistry(t)
	im := buildImage(t, baseFiles())
	im.push(t, src, "e2e/img", "v1")
	from := "docker://" + src.Host() + "/e2e/img:v1"
	layout := box.Path("layout")

	box.Run(t, nil, skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false", from, "docker://"+dst.Host()+"/e2e/img:v1")
	box.Run(t, nil, skopeo, "copy", "--src-tls-verify=false", from, "oci:"+layout+":v1")

	raw := box.Run(t, nil, skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+dst.Host()+"/e2e/img:v1")
	if !bytes.Equal([]byte(raw), im.manifest) {
		t.Errorf("the registry copy's manifest differs:\n got %s\nwant %s", raw, im.manifest)
	}

	// The OCI layout names our manifest and holds our blobs.
	var index ocispec.Index
	readJSON(t, filepath.Join(layout, "index.json"), &index)
	if len(index.Manifests) != 1 || index.Manifests[0].Digest != digest.FromBytes(im.manifest) {
		t.Errorf("the layout's index names %+v, want our manifest %s", index.Manifests, digest.FromBytes(im.manifest))
	}
	for _, b := range [][]byte{im.manifest, im.config, im.layer} {
		d := digest.FromBytes(b)
		got, err := os.ReadFile(filepath.Join(layout, "blobs", d.Algorithm().String(), d.Encoded()))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("the layout's blob %s: %d bytes that differ from ours, %v", d, len(got), err)
		}
	}

	// Our reader opens the registry copy from the copy's annotations.
	var manifest ocispec.Manifest
	if err := json.Unmarshal([]byte(raw), &manifest); err != nil || len(manifest.Layers) != 1 {
		t.Fatalf("the copy's manifest: %v, %d layers", err, len(manifest.Layers))
	}
	desc := manifest.Layers[0]
	f, err := fetcher.NewHTTP(dst.Host()+"/e2e/img@"+desc.Digest.String(), fetcher.WithPlainHTTP(), fetcher.WithSize(desc.Size))
	if err != nil {
		t.Fatal(err)
	}
	l, err := reader.Open(context.Background(), f, reader.WithAnnotations(desc.Annotations))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, file := range im.files {
		if got, err := fs.ReadFile(l, file.name); err != nil || !bytes.Equal(got, file.data) {
			t.Errorf("%s through our reader: %d bytes, %v", file.name, len(got), err)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
