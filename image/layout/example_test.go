package layout_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/image/layout"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Write a blob into a new layout, name a manifest "v1", and read both
// back by that name.
func Example() {
	dir, err := os.MkdirTemp("", "layout-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	config := []byte(`{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":[]}}`)
	configDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + configDesc.Digest.String() + `","size":` + fmt.Sprint(configDesc.Size) + `},"layers":[]}`)
	manifestDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(manifest), Size: int64(len(manifest))}

	dst, err := layout.Open(filepath.Join(dir, "app"), "v1")
	if err != nil {
		log.Fatal(err)
	}
	if err := dst.PushBlob(ctx, configDesc, bytes.NewReader(config)); err != nil {
		log.Fatal(err)
	}
	if err := dst.PushManifest(ctx, manifestDesc, manifest); err != nil {
		log.Fatal(err)
	}
	if err := dst.Tag(ctx, manifestDesc); err != nil {
		log.Fatal(err)
	}

	src, err := layout.Open(filepath.Join(dir, "app"), "v1")
	if err != nil {
		log.Fatal(err)
	}
	desc, err := src.Resolve(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("v1 is", desc.Digest == manifestDesc.Digest, desc.Annotations[ocispec.AnnotationRefName])
	f, err := src.Blob(ctx, configDesc)
	if err != nil {
		log.Fatal(err)
	}
	err = f.Fetch(ctx, []fetcher.Range{{Offset: 0, Length: 14}}, func(_ fetcher.Range, b []byte) error {
		fmt.Printf("config starts %s\n", b)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// v1 is true v1
	// config starts {"os":"linux",
}
