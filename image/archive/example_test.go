package archive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"

	"github.com/lazylayer/lazylayer/image/archive"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Open a docker-save archive (here made in memory) by one of its tags,
// and read the manifest made for it.
func Example() {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct{ name, data string }{
		{"config.json", `{"os":"linux","architecture":"amd64"}`},
		{"0123/layer.tar", "not really a tar"},
		{"manifest.json", `[{"Config":"config.json","RepoTags":["app:v1"],"Layers":["0123/layer.tar"]}]`},
	} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data))})
		tw.Write([]byte(f.data))
	}
	tw.Close()

	a, err := archive.New(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "app:v1")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	desc, err := a.Resolve(ctx)
	if err != nil {
		log.Fatal(err)
	}
	data, err := a.Manifest(ctx, desc)
	if err != nil {
		log.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		log.Fatal(err)
	}
	fmt.Println(desc.MediaType)
	for _, l := range m.Layers {
		fmt.Println(l.MediaType, l.Size, l.Digest)
	}
	// Output:
	// application/vnd.oci.image.manifest.v1+json
	// application/vnd.oci.image.layer.v1.tar 16 sha256:5e9a5ec87ab511bc877cf1fc7950c3caffb902cb2cfe1f682401a976907014bc
}
