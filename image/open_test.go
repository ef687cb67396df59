package image

import (
	"context"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/toc/estargz"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
)

var (
	amd64 = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

// threeLayers is an image of an eStargz base, a zstd:chunked layer that
// deletes and replaces files of it, and an eStargz top layer.
func threeLayers(t testing.TB) testImage {
	base := makeLayer(t, eStargz, tarOf(t,
		tfile{name: "bin/sh", data: "a shell"},
		tfile{name: "etc/passwd", data: "root"},
		tfile{name: "etc/hostname", data: "base"},
		tfile{name: "opt/app/old", data: "old"},
	), writer.WithPrioritizedFiles([]string{"bin/sh"}))
	middle := makeLayer(t, zstdChunked, tarOf(t,
		tfile{name: "etc/.wh.passwd"},
		tfile{name: "opt/app/.wh..wh..opq"},
		tfile{name: "opt/app/new", data: "new"},
		tfile{name: "usr/bin/start", data: "#!/bin/sh\nexec app\n"},
	))
	top := makeLayer(t, eStargz, tarOf(t,
		tfile{name: "etc/hostname", data: "top"},
		tfile{name: "bin/start", link: "/usr/bin/start"},
	))
	return testImage{
		layers: []testLayer{base, middle, top},
		config: ocispec.Image{Config: ocispec.ImageConfig{Entrypoint: []string{"/bin/start"}}},
	}
}

// multiPlatform stores img for amd64 and an empty image for arm64 under
// one index, the source's root.
func multiPlatform(t testing.TB, img testImage) *memSource {
	s := &memSource{}
	other := testImage{layers: []testLayer{makeLayer(t, eStargz, tarOf(t, tfile{name: "arm", data: "arm"}))}}
	s.root = s.index(t, other.store(t, s, arm64), img.store(t, s, amd64))
	return s
}

func TestOpenMergesLayers(t *testing.T) {
	src := multiPlatform(t, threeLayers(t))
	img, err := Open(context.Background(), src, WithPlatform("linux/amd64"))
	require.NoError(t, err)
	defer img.Close()
	require.NoError(t, img.Err())

	require.Equal(t, src.root, img.Root())
	require.Equal(t, amd64, img.ManifestDescriptor().Platform)
	require.Equal(t, []string{"/bin/start"}, img.Config().Config.Entrypoint)
	require.Len(t, img.Manifest().Layers, 3)
	var formats []toc.Format
	for _, l := range img.Layers() {
		require.NoError(t, l.Err)
		require.False(t, l.Whole)
		formats = append(formats, l.Format)
	}
	require.Equal(t, []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked, toc.FormatEStargz}, formats)

	root, err := img.FS()
	require.NoError(t, err)
	for name, want := range map[string]string{
		"etc/hostname": "top", "opt/app/new": "new", "bin/start": "#!/bin/sh\nexec app\n", "bin/sh": "a shell",
	} {
		data, err := fs.ReadFile(root, name)
		require.NoError(t, err, name)
		require.Equal(t, want, string(data), name)
	}
	for _, gone := range []string{"etc/passwd", "opt/app/old"} {
		_, err := root.Stat(gone)
		require.ErrorIs(t, err, fs.ErrNotExist, gone)
	}
}

// TestOpenRoundTrips checks that the image is open after three round
// trips: the root index (with a source that answers Resolve with its
// bytes, as a registry's GET by tag does), the platform's manifest, then
// the config and every layer's index at once, each in one request.
func TestOpenRoundTrips(t *testing.T) {
	src := multiPlatform(t, threeLayers(t))
	src.resolveBody = true
	// Every fetch waits until all four (config and three layers) have
	// started: Open must make them at once.
	const want = 4
	release := make(chan struct{})
	var arrived atomic.Int32
	var once sync.Once
	var stuck atomic.Bool
	guard := time.AfterFunc(time.Minute, func() { stuck.Store(true); once.Do(func() { close(release) }) })
	defer guard.Stop()
	src.fetchGate = func(digest.Digest) {
		if arrived.Add(1) == want {
			once.Do(func() { close(release) })
		}
		<-release
	}

	img, err := Open(context.Background(), src, WithPlatform("linux/amd64"))
	require.NoError(t, err)
	defer img.Close()
	require.False(t, stuck.Load(), "Open did not make the config's and the layers' requests at once")

	var got []string
	fetches := 0
	for _, c := range src.log() {
		got = append(got, c.op)
		require.LessOrEqual(t, c.level, 3, "%s %s", c.op, c.what)
		if c.op == "fetch" {
			fetches++
			require.Equal(t, 3, c.level)
		}
	}
	require.Equal(t, want, fetches, "one request for the config and one for each layer's index: %v", got)
	require.NotContains(t, got, "size", "blob sizes come from the descriptors")
}

// TestOpenEStargzOfOtherTools opens an eStargz layer annotated with its
// TOC digest only, as ctr-remote and other tools annotate it, so that
// nothing locates its index: Open fetches a tail of 64 KiB for it
// (layerTailHint), where the TOC of a small layer fits, not the reader's
// 1 MiB; a TOC larger than that costs one more request of exactly the
// rest.
func TestOpenEStargzOfOtherTools(t *testing.T) {
	random := make([]byte, 600<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	l := makeLayer(t, eStargz, tarOf(t, tfile{name: "big", data: string(random)}, tfile{name: "small", data: "small"}))
	l.desc.Annotations = map[string]string{estargz.AnnotationTOCDigest: l.desc.Annotations[estargz.AnnotationTOCDigest]}
	s := &memSource{}
	s.root = testImage{layers: []testLayer{l}}.store(t, s, nil)
	img, err := Open(context.Background(), s)
	require.NoError(t, err)
	defer img.Close()
	require.NoError(t, img.Err())
	require.Equal(t, toc.FormatEStargz, img.Layers()[0].Format)
	require.Equal(t, int64(layerTailHint), s.fetchedBytes(l.desc.Digest), "bytes fetched of the %d-byte layer", l.desc.Size)
	root, err := img.FS()
	require.NoError(t, err)
	data, err := fs.ReadFile(root, "small")
	require.NoError(t, err)
	require.Equal(t, "small", string(data))
}

func TestOpenNotSeekable(t *testing.T) {
	img0 := threeLayers(t)
	plain := makeLayer(t, plainGzip, tarOf(t, tfile{name: "etc/hostname", data: "plain"}, tfile{name: "etc/.wh.passwd"}))
	img0.layers = []testLayer{img0.layers[0], plain}
	src := &memSource{}
	src.root = img0.store(t, src, nil)

	img, err := Open(context.Background(), src)
	require.NoError(t, err, "a layer that cannot be opened fails alone")
	defer img.Close()
	layers := img.Layers()
	require.NoError(t, layers[0].Err)
	require.ErrorIs(t, layers[1].Err, ErrNotSeekable)
	require.ErrorIs(t, layers[1].Err, reader.ErrNotSeekable)
	require.ErrorContains(t, layers[1].Err, "layer 1 ("+plain.desc.Digest.String()+")")
	require.Equal(t, toc.FormatUnknown, layers[1].Format)
	require.ErrorIs(t, img.Err(), ErrNotSeekable)
	_, err = img.FS()
	require.ErrorIs(t, err, ErrNotSeekable, "no merged view without every layer")
	for _, c := range src.log() {
		require.NotEqual(t, plain.desc.Digest, c.what, "nothing is fetched of a layer known not to be seekable")
	}

	whole, err := Open(context.Background(), src, WithFetchWhole(t.TempDir()))
	require.NoError(t, err)
	defer whole.Close()
	require.NoError(t, whole.Err())
	require.True(t, whole.Layers()[1].Whole)
	root, err := whole.FS()
	require.NoError(t, err)
	data, err := fs.ReadFile(root, "etc/hostname")
	require.NoError(t, err)
	require.Equal(t, "plain", string(data))
	_, err = root.Stat("etc/passwd")
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestOpenFetchWholeCompressions(t *testing.T) {
	for _, kind := range []layerKind{plainGzip, plainZstd, plainTar} {
		l := makeLayer(t, kind, tarOf(t, tfile{name: "etc/os-release", data: "whole"}))
		src := &memSource{}
		src.root = testImage{layers: []testLayer{l}}.store(t, src, nil)
		dir := t.TempDir()
		img, err := Open(context.Background(), src, WithFetchWhole(dir))
		require.NoError(t, err)
		require.NoError(t, img.Err(), l.desc.MediaType)
		root, err := img.FS()
		require.NoError(t, err)
		data, err := fs.ReadFile(root, "etc/os-release")
		require.NoError(t, err)
		require.Equal(t, "whole", string(data))
		require.NoError(t, img.Close())
		left, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Empty(t, left, "Close removes the local copies")
	}
}

func TestOpenFetchWholeVerifies(t *testing.T) {
	plain := makeLayer(t, plainGzip, tarOf(t, tfile{name: "a", data: "genuine"}))
	forged := makeLayer(t, plainGzip, tarOf(t, tfile{name: "a", data: "forged!"}))
	src := &memSource{}
	src.root = testImage{layers: []testLayer{plain}}.store(t, src, nil)
	src.blobs[plain.desc.Digest] = forged.blob // same size, other bytes

	img, err := Open(context.Background(), src, WithFetchWhole(t.TempDir()))
	require.NoError(t, err)
	defer img.Close()
	require.ErrorIs(t, img.Layers()[0].Err, ErrDigestMismatch)
	require.Nil(t, img.Layers()[0].Layer)

	src.blobs[plain.desc.Digest] = plain.blob
	img, err = Open(context.Background(), src, WithFetchWhole(t.TempDir()), WithMaxWholeLayerSize(plain.desc.Size-1))
	require.NoError(t, err)
	defer img.Close()
	require.ErrorIs(t, img.Layers()[0].Err, ErrLimit)

	// A small blob of a large tar: the tar is bounded as it is read.
	bomb := makeLayer(t, plainGzip, tarOf(t, tfile{name: "zeros", data: strings.Repeat("\x00", 1<<20)}))
	src = &memSource{}
	src.root = testImage{layers: []testLayer{bomb}}.store(t, src, nil)
	img, err = Open(context.Background(), src, WithFetchWhole(t.TempDir()), WithMaxWholeLayerSize(64<<10))
	require.NoError(t, err)
	defer img.Close()
	require.Less(t, bomb.desc.Size, int64(64<<10))
	require.ErrorIs(t, img.Layers()[0].Err, ErrLimit)
}

// TestOpenHostile opens images whose manifests, indexes and configs lie,
// overflow a bound or are of unknown types: each fails with its typed
// error, having fetched nothing past the bound.
func TestOpenHostile(t *testing.T) {
	good := threeLayers(t)
	for name, tc := range map[string]struct {
		setup func(s *memSource)
		opts  []Option
		want  error
	}{
		"manifest size lies": {setup: func(s *memSource) { s.root.Size-- }, want: ErrDigestMismatch},
		"manifest digest lies": {setup: func(s *memSource) {
			data := s.blobs[s.root.Digest]
			s.blobs[s.root.Digest] = []byte(strings.Replace(string(data), `"schemaVersion":2`, `"schemaVersion":3`, 1))
		}, want: ErrDigestMismatch},
		"manifest over the limit": {setup: func(s *memSource) {
			s.root.Size = DefaultMaxManifestSize + 1
			delete(s.blobs, s.root.Digest) // never asked for
		}, want: ErrLimit},
		"manifest over a smaller limit": {opts: []Option{WithMaxManifestSize(100)}, want: ErrLimit},
		"config size lies": {setup: func(s *memSource) {
			s.root = s.rewrite(t, s.root, func(m *ocispec.Manifest) { m.Config.Size-- })
		}, want: ErrDigestMismatch},
		"config over the limit": {setup: func(s *memSource) {
			s.root = s.rewrite(t, s.root, func(m *ocispec.Manifest) { m.Config.Size = DefaultMaxManifestSize + 1 })
		}, want: ErrLimit},
		"config of an unknown type": {setup: func(s *memSource) {
			s.root = s.rewrite(t, s.root, func(m *ocispec.Manifest) { m.Config.MediaType = "application/vnd.example.thing" })
		}, want: ErrUnsupportedMediaType},
		"manifest of an unknown type": {setup: func(s *memSource) {
			s.root = s.addJSON(t, "application/vnd.example.thing",
				map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.example.thing"}, nil)
		}, want: ErrUnsupportedMediaType},
		"media types disagree": {setup: func(s *memSource) { s.root.MediaType = ocispec.MediaTypeImageIndex }, want: ErrInvalid},
		"too many layers":      {opts: []Option{WithMaxLayers(2)}, want: ErrLimit},
		"diff IDs do not match": {setup: func(s *memSource) {
			img := good
			img.config.RootFS.DiffIDs = []digest.Digest{good.layers[0].diffID}
			s.root = img.store(t, s, nil)
		}, want: ErrInvalid},
		"layer digest malformed": {setup: func(s *memSource) {
			s.root = s.rewrite(t, s.root, func(m *ocispec.Manifest) { m.Layers[1].Digest = "sha256:xyz" })
		}, want: ErrInvalid},
		"platform missing": {setup: func(s *memSource) {
			s.root = s.index(t, good.store(t, s, arm64))
		}, opts: []Option{WithPlatform("linux/s390x")}, want: ErrNoPlatform},
		"indexes nested too deep": {setup: func(s *memSource) {
			d := s.root
			for range DefaultMaxIndexDepth + 1 {
				d = s.index(t, d)
			}
			s.root = d
		}, want: ErrLimit},
		"index cycle": {setup: func(s *memSource) {
			// An index cannot name itself by digest: a source that
			// answers with an index whatever is asked for lies about
			// every digest but the first.
			s.root = s.index(t, good.store(t, s, amd64))
			idx := s.blobs[s.root.Digest]
			for d := range s.blobs {
				s.blobs[d] = idx
			}
		}, want: ErrDigestMismatch},
	} {
		t.Run(name, func(t *testing.T) {
			s := &memSource{}
			s.root = good.store(t, s, nil)
			if tc.setup != nil {
				tc.setup(s)
			}
			img, err := Open(context.Background(), s, append(tc.opts, WithPlatform("linux/amd64"))...)
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, img)
			require.Less(t, len(err.Error()), 1000, "error messages are bounded")
		})
	}
}

// rewrite stores a changed copy of the manifest desc names.
func (s *memSource) rewrite(t testing.TB, desc ocispec.Descriptor, change func(*ocispec.Manifest)) ocispec.Descriptor {
	var m ocispec.Manifest
	require.NoError(t, jsonUnmarshal(s.blobs[desc.Digest], &m))
	change(&m)
	return s.addJSON(t, desc.MediaType, m, desc.Platform)
}

func TestOpenLayerOfUnknownType(t *testing.T) {
	img0 := threeLayers(t)
	img0.layers[2].desc.MediaType = "application/vnd.example.layer"
	src := &memSource{}
	src.root = img0.store(t, src, nil)
	img, err := Open(context.Background(), src)
	require.NoError(t, err)
	defer img.Close()
	require.ErrorIs(t, img.Layers()[2].Err, ErrUnsupportedMediaType)
	require.ErrorContains(t, img.Err(), "layer 2")
}

func TestPlatformErrorIsBounded(t *testing.T) {
	s := &memSource{}
	var entries []ocispec.Descriptor
	img := testImage{layers: []testLayer{makeLayer(t, eStargz, tarOf(t, tfile{name: "a", data: "a"}))}}
	m := img.store(t, s, nil)
	for i := range 40 {
		e := m
		e.Platform = &ocispec.Platform{OS: "linux", Architecture: strings.Repeat("x", 200) + string(rune('a'+i%26))}
		entries = append(entries, e)
	}
	s.root = s.index(t, entries...)
	_, err := Open(context.Background(), s, WithPlatform("linux/riscv64"))
	var perr *PlatformError
	require.ErrorAs(t, err, &perr)
	require.Len(t, perr.Have, maxListedPlatforms)
	require.Equal(t, 40-maxListedPlatforms, perr.More)
	require.Equal(t, "linux/riscv64", perr.Want)
	require.Less(t, len(err.Error()), 4000)
}

// openThreeLayersCached opens threeLayers, with a patterns annotation
// naming etc/hostname, with a cache.
func openThreeLayersCached(t *testing.T) (*Image, *memSource) {
	img0 := threeLayers(t)
	img0.annotations = map[string]string{prefetch.AnnotationPatterns: "etc/hostname"}
	src := &memSource{}
	src.root = img0.store(t, src, nil)
	img, err := Open(context.Background(), src, WithReaderOptions(reader.WithCache(cache.NewMemory(64<<20))))
	require.NoError(t, err)
	t.Cleanup(func() { img.Close() })
	return img, src
}

func TestImagePrefetch(t *testing.T) {
	img, src := openThreeLayersCached(t)

	plan, err := img.Plan(context.Background())
	require.NoError(t, err)
	type item struct {
		layer  int
		path   string
		reason prefetch.Reason
	}
	var items []item
	for _, it := range plan.Items() {
		items = append(items, item{it.Layer, it.Path, it.Reason})
	}
	require.Subset(t, items, []item{
		{0, "bin/sh", prefetch.ReasonLandmark},
		{2, "etc/hostname", prefetch.ReasonPattern},
		{1, "usr/bin/start", prefetch.ReasonEntrypoint},
	})

	e, err := img.Prefetch(context.Background())
	require.NoError(t, err)
	require.NoError(t, e.Wait())
	requireCached(t, img, src, "bin/sh", "etc/hostname")
}

// TestImagePrefetchTakesTheCarriedPlan: an image that carries a plan
// (landmarks, patterns) is prefetched by it alone. The config analysis,
// which would read the middle layer's usr/bin/start over the network to
// follow its #! line, is not made.
func TestImagePrefetchTakesTheCarriedPlan(t *testing.T) {
	img, src := openThreeLayersCached(t)
	middle := img.Layers()[1].Descriptor.Digest
	src.fetchGate = func(d digest.Digest) {
		if d == middle {
			t.Error("Prefetch analysed the config of an image that carries its plan")
		}
	}
	e, err := img.Prefetch(context.Background())
	require.NoError(t, err)
	require.NoError(t, e.Wait())
}

// TestImagePrefetchPlansFromTheConfig: an image that carries no plan is
// prefetched by the plan of its config.
func TestImagePrefetchPlansFromTheConfig(t *testing.T) {
	img0 := threeLayers(t)
	img0.layers[0] = makeLayer(t, eStargz, tarOf(t,
		tfile{name: "bin/sh", data: "a shell"},
		tfile{name: "etc/passwd", data: "root"},
	))
	src := &memSource{}
	src.root = img0.store(t, src, nil)
	img, err := Open(context.Background(), src, WithReaderOptions(reader.WithCache(cache.NewMemory(64<<20))))
	require.NoError(t, err)
	defer img.Close()
	carried, err := img.carriedPlan(context.Background())
	require.NoError(t, err)
	require.Empty(t, carried.Items())

	e, err := img.Prefetch(context.Background())
	require.NoError(t, err)
	require.NoError(t, e.Wait())
	requireCached(t, img, src, "bin/start", "bin/sh")
}

// requireCached reads names from img and requires that it made no
// request for them.
func requireCached(t *testing.T, img *Image, src *memSource, names ...string) {
	t.Helper()
	before := len(src.log())
	root, err := img.FS()
	require.NoError(t, err)
	for _, name := range names {
		_, err := fs.ReadFile(root, name)
		require.NoError(t, err)
	}
	require.Equal(t, before, len(src.log()), "prefetched files are read from the cache")
}

func TestImagePrefetchNeedsCache(t *testing.T) {
	src := &memSource{}
	src.root = threeLayers(t).store(t, src, nil)
	img, err := Open(context.Background(), src)
	require.NoError(t, err)
	defer img.Close()
	_, err = img.Prefetch(context.Background())
	require.ErrorIs(t, err, reader.ErrNoCache)
}
