package convert_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/lazylayer/lazylayer/toc/estargz"

	"github.com/lazylayer/lazylayer/convert"
	"github.com/lazylayer/lazylayer/prefetch"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Convert an image to eStargz with the files its entrypoint needs first.
// The stores here are in memory (see store_test.go); a registry
// repository or an OCI layout directory plugs in the same way.
func ExampleImage() {
	src := newMemStore()
	src.root = src.addImage(dockerManifest, linuxAMD64, []string{"/bin/app"},
		layer{tarOf(
			file{name: "bin/sh", content: "a shell", mode: 0o755},
			file{name: "bin/app", content: "#!/bin/sh\necho hello\n", mode: 0o755},
			file{name: "usr/share/doc/app.txt", content: "not needed at start"},
		), dockerGzip})
	dst := newMemStore()

	root, err := convert.Image(context.Background(), src, dst, convert.WithProgress(func(p convert.Progress) {
		if p.Done {
			fmt.Printf("layer %d converted, %s\n", p.Index, p.Layer.MediaType)
		}
	}))
	if err != nil {
		fmt.Println(err)
		return
	}
	var m ocispec.Manifest
	dst.getJSON(root, &m)
	fmt.Println(root.MediaType)
	for _, l := range m.Layers {
		fmt.Println(l.MediaType, "with TOC digest:", l.Annotations[estargz.AnnotationTOCDigest] != "")
	}
	fmt.Println("prefetch:", strings.ReplaceAll(m.Annotations[prefetch.AnnotationPatterns], "\n", " "))
	// Output:
	// layer 0 converted, application/vnd.docker.image.rootfs.diff.tar.gzip
	// application/vnd.oci.image.manifest.v1+json
	// application/vnd.oci.image.layer.v1.tar+gzip with TOC digest: true
	// prefetch: bin/app bin/sh
}
