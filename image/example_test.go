package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/writer"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// blobs is a Source of an image in memory.
type blobs struct {
	root ocispec.Descriptor
	data map[digest.Digest][]byte
}

func (b *blobs) Resolve(context.Context) (ocispec.Descriptor, error) { return b.root, nil }

func (b *blobs) Manifest(_ context.Context, d ocispec.Descriptor) ([]byte, error) {
	return b.data[d.Digest], nil
}

func (b *blobs) Blob(_ context.Context, d ocispec.Descriptor) (fetcher.Fetcher, error) {
	data := b.data[d.Digest]
	return fetcher.FromReaderAt(bytes.NewReader(data), int64(len(data))), nil
}

// put stores data and returns its descriptor.
func (b *blobs) put(mediaType string, data []byte) ocispec.Descriptor {
	d := digest.FromBytes(data)
	b.data[d] = data
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

// layer builds an eStargz layer of one file.
func (b *blobs) layer(name, content string) (ocispec.Descriptor, digest.Digest) {
	var tarball, blob bytes.Buffer
	tw := tar.NewWriter(&tarball)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content))})
	tw.Write([]byte(content))
	tw.Close()
	res, err := writer.Build(context.Background(), &blob, &tarball)
	if err != nil {
		log.Fatal(err)
	}
	desc := b.put(ocispec.MediaTypeImageLayerGzip, blob.Bytes())
	desc.Annotations = res.Annotations // what makes the layer seekable
	return desc, res.DiffID
}

func Example() {
	src := &blobs{data: make(map[digest.Digest][]byte)}
	base, baseID := src.layer("etc/motd", "hello from the base layer\n")
	app, appID := src.layer("etc/motd", "hello from the app layer\n")
	config, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{baseID, appID}},
	})
	manifest, _ := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    src.put(ocispec.MediaTypeImageConfig, config),
		Layers:    []ocispec.Descriptor{base, app},
	})
	src.root = src.put(ocispec.MediaTypeImageManifest, manifest)

	img, err := image.Open(context.Background(), src)
	if err != nil {
		log.Fatal(err)
	}
	defer img.Close()
	for i, l := range img.Layers() {
		fmt.Println("layer", i, l.Format, l.Err)
	}
	root, err := img.FS()
	if err != nil {
		log.Fatal(err)
	}
	motd, err := fs.ReadFile(root, "etc/motd")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(motd))
	// Output:
	// layer 0 estargz <nil>
	// layer 1 estargz <nil>
	// hello from the app layer
}
