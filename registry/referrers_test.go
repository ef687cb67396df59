package registry_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/lazylayer/lazylayer/internal/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Referrers come from the referrers API where the registry has one (the
// in-process registry), else from the sha256-<hex> tag (docker-registry
// 2.8), filtered by artifact type.
func TestReferrers(t *testing.T) {
	for _, kind := range []string{"start", registrytest.KindInProcess} {
		t.Run(kind, func(t *testing.T) {
			var reg *registrytest.Registry
			if kind == "start" {
				reg = registrytest.Start(t)
			} else {
				s := newServer(t) // with the referrers API
				reg = &registrytest.Registry{Host: s.Host, Kind: registrytest.KindInProcess}
			}
			c := newClient(t)
			r := repository(t, c, reg.Host+"/ref/app:v1")
			im := newTestImage(1 << 10)
			im.push(t, r)
			ctx := context.Background()
			if got, err := r.Referrers(ctx, im.manifestDesc, ""); err != nil || len(got) != 0 {
				t.Fatalf("Referrers of an image without any = %v, %v", got, err)
			}
			// An artifact whose subject is the manifest.
			empty := blobDesc(ocispec.MediaTypeEmptyJSON, []byte("{}"))
			if err := r.PushBlob(ctx, empty, jsonReader("{}")); err != nil {
				t.Fatal(err)
			}
			subject := im.manifestDesc
			// The artifact type is the config's media type, which the
			// in-process registry (unlike the spec) reads alone.
			config := empty
			config.MediaType = "application/x-sig"
			art := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
				Config: config, Layers: []ocispec.Descriptor{empty}, Subject: &subject}
			art.SchemaVersion = 2
			data, _ := json.Marshal(art)
			artDesc := blobDesc(ocispec.MediaTypeImageManifest, data)
			if err := r.PushManifest(ctx, artDesc, data); err != nil {
				t.Fatal(err)
			}
			if reg.Kind == registrytest.KindDistribution {
				// No referrers API: the client that pushed keeps the tag.
				artDesc.ArtifactType = config.MediaType
				idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{artDesc}}
				idx.SchemaVersion = 2
				idata, _ := json.Marshal(idx)
				tagged := repository(t, c, reg.Host+"/ref/app:sha256-"+subject.Digest.Encoded())
				idesc := blobDesc(ocispec.MediaTypeImageIndex, idata)
				if err := tagged.PushManifest(ctx, idesc, idata); err != nil {
					t.Fatal(err)
				}
				if err := tagged.Tag(ctx, idesc); err != nil {
					t.Fatal(err)
				}
			}
			got, err := r.Referrers(ctx, subject, "application/x-sig")
			if err != nil || len(got) != 1 || got[0].Digest != artDesc.Digest {
				t.Fatalf("Referrers = %+v, %v; want %s", got, err, artDesc.Digest)
			}
			if got, err := r.Referrers(ctx, subject, "application/x-other"); err != nil || len(got) != 0 {
				t.Fatalf("Referrers of another type = %+v, %v", got, err)
			}
		})
	}
}
