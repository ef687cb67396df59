package image

import (
	"bytes"
	"context"
	"maps"
	"testing"

	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
)

func TestVerifyLayer(t *testing.T) {
	ctx := context.Background()
	files := tarOf(t, tfile{name: "etc/hostname", data: "box"}, tfile{name: "bin/app", data: string(bytes.Repeat([]byte("app "), 5000))})
	layers := []testLayer{makeLayer(t, eStargz, files), makeLayer(t, zstdChunked, files), makeLayer(t, plainGzip, files)}
	open := func(img testImage) *Image {
		s := &memSource{}
		s.root = img.store(t, s, nil)
		opened, err := Open(ctx, s, WithFetchWhole(t.TempDir()))
		require.NoError(t, err)
		t.Cleanup(func() { opened.Close() })
		return opened
	}

	good := open(testImage{layers: layers})
	for i := range layers {
		require.NoError(t, good.VerifyLayer(ctx, i), "layer %d", i)
	}

	// A config whose DiffIDs lie: a runtime pulling whole would refuse
	// every layer.
	lying := open(testImage{layers: layers, config: configWithDiffIDs(digest.FromString("a"), digest.FromString("b"), digest.FromString("c"))})
	for i := range layers {
		require.ErrorIs(t, lying.VerifyLayer(ctx, i), ErrDigestMismatch, "layer %d", i)
	}

	// Another blob under the first one's annotations, its digest and
	// DiffID vouched for: the index the annotations pin is what fails.
	bad := makeLayer(t, eStargz, tarOf(t, tfile{name: "etc/hostname", data: "xyz"}, tfile{name: "bin/app", data: string(bytes.Repeat([]byte("app "), 5000))}))
	forged := layers[0]
	forged.blob = bad.blob
	forged.desc.Digest, forged.desc.Size = bad.desc.Digest, bad.desc.Size
	forged.desc.Annotations = maps.Clone(forged.desc.Annotations)
	delete(forged.desc.Annotations, toc.AnnotationIndexPosition) // else the position is what fails
	img := open(testImage{layers: []testLayer{forged}, config: configWithDiffIDs(bad.diffID)})
	require.ErrorIs(t, img.VerifyLayer(ctx, 0), reader.ErrTOCDigest)
}

func configWithDiffIDs(ids ...digest.Digest) (c ocispec.Image) {
	c.RootFS.DiffIDs = ids
	return c
}
