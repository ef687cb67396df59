package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/internal/localregistry"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// file is a regular file of a test layer.
type file struct {
	name string
	data []byte
}

// baseFiles is the content of the test layers: files of 200 KiB that
// span several content-defined chunks each, and a small one.
func baseFiles() []file {
	rng := rand.New(rand.NewPCG(1, 2))
	var files []file
	for i := range 20 {
		data := make([]byte, 200<<10)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		files = append(files, file{fmt.Sprintf("data/f%02d", i), data})
	}
	return append(files, file{"data/hello", []byte("hello\n")})
}

// image is a one-layer OCI image whose layer our writer wrote as
// zstd:chunked.
type image struct {
	files    []file
	layer    []byte
	res      *writer.Result
	config   []byte
	manifest []byte
}

// buildImage writes files (under a directory "data") as a zstd:chunked
// layer and describes it in an OCI config and manifest.
func buildImage(t *testing.T, files []file) *image {
	t.Helper()
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "data/", Mode: 0o755, Format: tar.FormatPAX}); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var blob bytes.Buffer
	res, err := writer.Build(context.Background(), &blob, &in, writer.WithFormat(toc.FormatZstdChunked))
	if err != nil {
		t.Fatal(err)
	}
	im := &image{files: files, layer: blob.Bytes(), res: res}
	im.describe(t)
	return im
}

// describe writes the image's config and manifest for its layer and
// annotations.
func (im *image) describe(t *testing.T) {
	t.Helper()
	var err error
	im.config, err = json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{Architecture: "amd64", OS: "linux"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{im.res.DiffID}},
	})
	if err != nil {
		t.Fatal(err)
	}
	im.manifest, err = json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(im.config), Size: int64(len(im.config))},
		Layers: []ocispec.Descriptor{{
			MediaType:   ocispec.MediaTypeImageLayerZstd,
			Digest:      digest.FromBytes(im.layer),
			Size:        int64(len(im.layer)),
			Annotations: im.res.Annotations,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// layerDigest is the digest of the image's layer blob.
func (im *image) layerDigest() digest.Digest { return digest.FromBytes(im.layer) }

// position returns where the layer's TOC and tar-split are, as its
// annotations say.
func (im *image) position(t *testing.T) toc.Footer {
	t.Helper()
	_, f, err := zstdchunked.ParseAnnotations(im.res.Annotations)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// tocRange is the Range header value that asks for the layer's TOC.
func (im *image) tocRange(t *testing.T) string {
	f := im.position(t)
	return fmt.Sprintf("bytes=%d-%d", f.TOCOffset, f.TOCOffset+f.TOCLength-1)
}

// dataEnd is where the layer's data ends and its TOC frame starts.
func (im *image) dataEnd(t *testing.T) int64 {
	return im.position(t).TOCOffset - zstdchunked.SkippableFrameHeaderSize
}

// push stores the image in repo of the registry under tag.
func (im *image) push(t *testing.T, reg *localregistry.Registry, repo, tag string) {
	t.Helper()
	ctx := t.Context()
	for _, b := range [][]byte{im.layer, im.config} {
		if _, err := reg.Push(ctx, repo, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.PushManifest(ctx, repo, tag, ocispec.MediaTypeImageManifest, im.manifest); err != nil {
		t.Fatal(err)
	}
}

// withNewKeysOnly returns the image described with only the annotation
// keys of current containers/storage, as our writer wrote them before.
func (im *image) withNewKeysOnly(t *testing.T) *image {
	t.Helper()
	out := *im
	res := *im.res
	res.Annotations = maps.Clone(im.res.Annotations)
	delete(res.Annotations, zstdchunked.LegacyAnnotationManifestChecksum)
	delete(res.Annotations, zstdchunked.LegacyAnnotationManifestPosition)
	out.res = &res
	out.describe(t)
	return &out
}

// withNewFooter returns the layer blob ending in containers/storage's
// 72-byte footer instead of the 48-byte one, as our writer wrote it
// before; the frames before the footer are unchanged.
func (im *image) withNewFooter(t *testing.T) []byte {
	t.Helper()
	f := im.position(t)
	f.Size = zstdchunked.FooterSize
	footer, err := zstdchunked.Footer(f)
	if err != nil {
		t.Fatal(err)
	}
	return append(bytes.Clone(im.layer[:len(im.layer)-zstdchunked.LegacyFooterSize]), footer...)
}

// checkFiles compares the regular files under dir with the image's.
func (im *image) checkFiles(t *testing.T, dir string) {
	t.Helper()
	for _, f := range im.files {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.name)))
		if err != nil {
			t.Errorf("%s: %v", f.name, err)
		} else if !bytes.Equal(got, f.data) {
			t.Errorf("%s: %d bytes that differ from the %d written", f.name, len(got), len(f.data))
		}
	}
}

// describeRequests prints requests one a line, for test logs.
func describeRequests(reqs []request) string {
	var b strings.Builder
	for _, r := range reqs {
		rng := "no Range"
		if n := r.ranges(); n == 1 {
			rng = "Range " + r.Range
		} else if n > 1 {
			rng = fmt.Sprintf("Range of %d ranges", n)
		}
		fmt.Fprintf(&b, "\n  %s %s, %s: %d, %d bytes", r.Method, r.Path, rng, r.Status, r.Bytes)
	}
	return b.String()
}
