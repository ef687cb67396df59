package registry_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Push a blob and a manifest, tag it, then resolve the tag and read a
// range of the blob back.
func Example() {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	client, err := registry.New()
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	repo, err := client.Repository(host + "/demo/app:v1")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	layer := []byte("hello, lazy layers")
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layerDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	configDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
		ocispec.MediaTypeImageManifest, configDesc.MediaType, configDesc.Digest, configDesc.Size, layerDesc.MediaType, layerDesc.Digest, layerDesc.Size))
	manifestDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(manifest), Size: int64(len(manifest))}

	for _, b := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{layerDesc, layer}, {configDesc, config}} {
		if err := repo.PushBlob(ctx, b.desc, bytes.NewReader(b.data)); err != nil {
			log.Fatal(err)
		}
	}
	if err := repo.PushManifest(ctx, manifestDesc, manifest); err != nil {
		log.Fatal(err)
	}
	if err := repo.Tag(ctx, manifestDesc); err != nil {
		log.Fatal(err)
	}

	desc, err := repo.Resolve(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(desc.MediaType, desc.Digest == manifestDesc.Digest)

	blob, err := repo.Blob(ctx, layerDesc)
	if err != nil {
		log.Fatal(err)
	}
	err = blob.Fetch(ctx, []fetcher.Range{{Offset: 7, Length: 4}}, func(r fetcher.Range, data []byte) error {
		fmt.Printf("%s\n", data)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// application/vnd.oci.image.manifest.v1+json true
	// lazy
}

// Pull through a node-local mirror first, as containerd's hosts.toml
// says, with the registry as the fallback.
func ExampleWithHostsDir() {
	cfg, err := registry.ParseHosts([]byte(`
server = "https://registry-1.docker.io"

[host."http://127.0.0.1:30020"]
  capabilities = ["pull", "resolve"]
`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Server.Host)
	for _, m := range cfg.Hosts {
		fmt.Println(m.Host, m.Capabilities&registry.CapResolve != 0)
	}
	// The same, read from /etc/containerd/certs.d/docker.io/hosts.toml:
	client, err := registry.New(registry.WithHostsDir("/etc/containerd/certs.d"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	// Output:
	// https://registry-1.docker.io
	// http://127.0.0.1:30020 true
}
