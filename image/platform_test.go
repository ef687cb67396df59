package image

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lazylayer/lazylayer/toc/soci"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestChoosePlatform(t *testing.T) {
	entry := func(p string) ocispec.Descriptor {
		pl, err := parsePlatform(p)
		require.NoError(t, err)
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest("sha256:" + p),
			Platform: &ocispec.Platform{OS: pl.os, Architecture: pl.arch, Variant: pl.variant}}
	}
	for _, tc := range []struct {
		want    string
		entries []string
		chosen  string // "" if none
	}{
		{"linux/amd64", []string{"linux/arm64", "linux/amd64"}, "linux/amd64"},
		{"linux/x86_64", []string{"linux/amd64"}, "linux/amd64"},
		{"linux/amd64", []string{"linux/386"}, "linux/386"},
		{"linux/amd64/v3", []string{"linux/amd64", "linux/amd64/v2"}, "linux/amd64/v2"},
		{"linux/amd64", []string{"linux/amd64/v2"}, ""},
		{"linux/arm64/v8", []string{"linux/arm/v7", "linux/arm64"}, "linux/arm64"},
		{"linux/aarch64", []string{"linux/arm64/v8"}, "linux/arm64/v8"},
		{"linux/arm64", []string{"linux/arm/v6", "linux/arm/v7"}, "linux/arm/v7"},
		{"linux/arm/v7", []string{"linux/arm/v5", "linux/arm/v6"}, "linux/arm/v6"},
		{"linux/arm", []string{"linux/arm/v7"}, "linux/arm/v7"},
		{"linux/armhf", []string{"linux/arm/7"}, "linux/arm/7"},
		{"linux/arm/v6", []string{"linux/arm/v7"}, ""},
		{"linux/arm/v7", []string{"linux/arm64"}, ""},
		{"linux/amd64", []string{"windows/amd64"}, ""},
		{"LINUX/AMD64", []string{"linux/amd64"}, "linux/amd64"},
	} {
		want, err := parsePlatform(tc.want)
		require.NoError(t, err)
		var entries []ocispec.Descriptor
		for _, e := range tc.entries {
			entries = append(entries, entry(e))
		}
		got, err := choose(ocispec.Descriptor{Digest: "sha256:index"}, entries, want)
		if tc.chosen == "" {
			require.ErrorIs(t, err, ErrNoPlatform, "%s among %v", tc.want, tc.entries)
			continue
		}
		require.NoError(t, err, "%s among %v", tc.want, tc.entries)
		require.Equal(t, "sha256:"+tc.chosen, string(got.Digest), "%s among %v", tc.want, tc.entries)
	}
}

func TestChooseSkipsOtherEntries(t *testing.T) {
	amd := &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	entries := []ocispec.Descriptor{
		{MediaType: "application/vnd.example.attestation", Digest: "sha256:att", Platform: amd},
		{MediaType: ocispec.MediaTypeImageIndex, Digest: "sha256:nested"},
		{MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:noplatform"},
	}
	got, err := choose(ocispec.Descriptor{}, entries, platform{"linux", "amd64", ""})
	require.NoError(t, err)
	require.Equal(t, "sha256:nested", string(got.Digest), "a nested index without a platform is searched")
	entries = append(entries, ocispec.Descriptor{MediaType: MediaTypeDockerManifest, Digest: "sha256:amd", Platform: amd})
	got, err = choose(ocispec.Descriptor{}, entries, platform{"linux", "amd64", ""})
	require.NoError(t, err)
	require.Equal(t, "sha256:amd", string(got.Digest), "a manifest of the platform comes first")
}

func TestParsePlatform(t *testing.T) {
	for _, bad := range []string{"", "linux", "linux/", "/amd64", "linux/arm/", "a/b/c/d"} {
		_, err := parsePlatform(bad)
		require.Error(t, err, bad)
	}
	p, err := parsePlatform("linux/arm64/v8")
	require.NoError(t, err)
	require.Equal(t, "linux/arm64", p.String())
	require.NotEmpty(t, defaultPlatform().arch)
}

// TestChooseSkipsArtifacts checks that an entry with an artifactType, as
// the SOCI index soci convert lists first (or alone) with its manifest's
// platform, is never chosen as the image.
func TestChooseSkipsArtifacts(t *testing.T) {
	amd := &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	sociIndex := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: soci.MediaTypeIndexV2,
		Digest: "sha256:soci", Platform: amd}
	image := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:image", Platform: amd}
	got, err := choose(ocispec.Descriptor{}, []ocispec.Descriptor{sociIndex, image}, platform{"linux", "amd64", ""})
	require.NoError(t, err)
	require.Equal(t, image.Digest, got.Digest)

	_, err = choose(ocispec.Descriptor{}, []ocispec.Descriptor{sociIndex}, platform{"linux", "amd64", ""})
	var pe *PlatformError
	require.ErrorAs(t, err, &pe)
	require.Empty(t, pe.Have, "an artifact offers no platform")
}
