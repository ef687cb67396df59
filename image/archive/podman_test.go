package archive_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"testing"

	"github.com/lazylayer/lazylayer/image/archive"
	"github.com/lazylayer/lazylayer/internal/imagetest"
	"github.com/lazylayer/lazylayer/internal/tooltest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestPodmanSave opens what podman 4.3 saves of an image imported from a
// tar, in both formats (docker-archive with an uncompressed layer,
// oci-archive with a gzipped one): the layer has the digest of the
// manifest, the config's DiffID names it, and it holds the imported
// file.
func TestPodmanSave(t *testing.T) {
	podman := tooltest.Look(t, "podman", "podman")
	box := tooltest.NewSandbox(t)
	run := func(args ...string) {
		global := []string{
			"--root", box.Path("root"), "--runroot", box.Path("runroot"), "--tmpdir", box.Path("libpod"),
			"--storage-driver", "vfs", "--events-backend", "none", "--cgroup-manager", "cgroupfs",
		}
		box.Run(t, nil, podman, append(global, args...)...)
	}
	const hello = "hello from lazylayer\n"
	rootfs := box.Path("rootfs.tar")
	if err := os.WriteFile(rootfs, makeTar(t, entry{name: "etc/"}, entry{name: "etc/hello", data: hello}), 0o644); err != nil {
		t.Fatal(err)
	}
	run("import", "--quiet", rootfs, "localhost/test:v1")
	run("save", "--quiet", "--format", "docker-archive", "-o", box.Path("docker.tar"), "localhost/test:v1")
	run("save", "--quiet", "--format", "oci-archive", "-o", box.Path("oci.tar"), "localhost/test:v1")

	for _, tc := range []struct{ file, ref string }{
		{"docker.tar", "localhost/test:v1"},
		{"docker.tar", ""},
		{"oci.tar", "localhost/test:v1"},
	} {
		t.Run(tc.file+":"+tc.ref, func(t *testing.T) {
			a, err := archive.Open(box.Path(tc.file), tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			_, _, m := imagetest.Resolve(t, a)
			if len(m.Layers) != 1 {
				t.Fatalf("manifest of %d layers", len(m.Layers))
			}
			var config ocispec.Image
			if err := json.Unmarshal(imagetest.ReadBlob(t, a, m.Config), &config); err != nil {
				t.Fatal(err)
			}
			layer := imagetest.ReadBlob(t, a, m.Layers[0])
			if d := digest.FromBytes(layer); d != m.Layers[0].Digest {
				t.Errorf("layer digest %s, manifest says %s", d, m.Layers[0].Digest)
			}
			if m.Layers[0].MediaType == ocispec.MediaTypeImageLayerGzip {
				zr, err := gzip.NewReader(bytes.NewReader(layer))
				if err != nil {
					t.Fatal(err)
				}
				if layer, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if len(config.RootFS.DiffIDs) != 1 || config.RootFS.DiffIDs[0] != digest.FromBytes(layer) {
				t.Errorf("DiffIDs %v, layer %s (%s)", config.RootFS.DiffIDs, digest.FromBytes(layer), m.Layers[0].MediaType)
			}
			if got := fileOf(t, layer, "etc/hello"); got != hello {
				t.Errorf("etc/hello = %q", got)
			}
		})
	}
}

// fileOf returns the content of the file name in the tar layer.
func fileOf(t *testing.T, layer []byte, name string) string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if hdr.Name == name || hdr.Name == "./"+name || hdr.Name == "/"+name {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}
