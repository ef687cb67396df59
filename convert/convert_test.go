package convert_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lazylayer/lazylayer/toc/estargz"
	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/convert"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}

func randomText(n int) string {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return string(b)
}

// testLayers are three layers of the three compressions, Docker and OCI
// types, whose top layer holds a script the config runs.
func testLayers() []layer {
	return []layer{
		{tarOf(
			file{name: "bin/"},
			file{name: "bin/sh", content: "not really a shell", mode: 0o755},
			file{name: "bin/ls", content: "ls", mode: 0o755},
			file{name: "etc/passwd", content: "root:x:0:0::/root:/bin/sh\n"},
			file{name: "usr/lib/big", content: randomText(300 << 10)},
		), dockerGzip},
		{tarOf(
			file{name: "bin/app", content: "#!/bin/sh\necho hi\n", mode: 0o755},
			file{name: "bin/run", symlink: "app"},
			file{name: "usr/share/doc/readme", content: "doc"},
		), ocispec.MediaTypeImageLayerZstd},
		{tarOf(
			file{name: "etc/hosts", content: "127.0.0.1 localhost\n"},
			file{name: "tmp/x", content: randomText(10 << 10)},
		), ocispec.MediaTypeImageLayer},
	}
}

func testImage(manifestType string) *memStore {
	s := newMemStore()
	s.root = s.addImage(manifestType, linuxAMD64, []string{"/bin/run"}, testLayers()...)
	return s
}

// decompress returns the tar a layer blob holds, as a runtime that does
// not read it lazily unpacks it.
func decompress(t *testing.T, d ocispec.Descriptor, blob []byte) []byte {
	t.Helper()
	var r io.Reader
	switch d.MediaType {
	case ocispec.MediaTypeImageLayerGzip:
		zr, err := gzip.NewReader(bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case ocispec.MediaTypeImageLayerZstd:
		zr, err := zstd.NewReader(bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("layer media type %q", d.MediaType)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tarFiles lists a tar's entries in order, and the contents of its
// regular files, leaving out what seekable formats add.
func tarFiles(t *testing.T, b []byte) ([]string, map[string]string) {
	t.Helper()
	var names []string
	files := make(map[string]string)
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, files
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		switch name {
		case estargz.TOCTarName, toc.PrefetchLandmark, toc.NoPrefetchLandmark:
			names = append(names, name)
			continue
		}
		names = append(names, name)
		c, _ := io.ReadAll(tr)
		files[name] = string(c)
	}
}

type converted struct {
	manifest ocispec.Manifest
	config   ocispec.Image
	tars     [][]byte
}

// check reads the image dst holds under root and checks that it runs
// where nothing reads lazily: standard media types, and every layer's
// uncompressed digest is the config's DiffID.
func check(t *testing.T, dst *memStore, root ocispec.Descriptor) converted {
	t.Helper()
	if root.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("root media type %q", root.MediaType)
	}
	var out converted
	dst.getJSON(root, &out.manifest)
	if out.manifest.Config.MediaType != ocispec.MediaTypeImageConfig {
		t.Errorf("config media type %q", out.manifest.Config.MediaType)
	}
	dst.getJSON(out.manifest.Config, &out.config)
	if len(out.config.RootFS.DiffIDs) != len(out.manifest.Layers) {
		t.Fatalf("%d DiffIDs for %d layers", len(out.config.RootFS.DiffIDs), len(out.manifest.Layers))
	}
	for i, l := range out.manifest.Layers {
		blob := dst.get(l)
		if blob == nil {
			t.Fatalf("layer %d not written", i)
		}
		tb := decompress(t, l, blob)
		if got := digest.FromBytes(tb); got != out.config.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: uncompressed digest %s, DiffID %s", i, got, out.config.RootFS.DiffIDs[i])
		}
		out.tars = append(out.tars, tb)
	}
	return out
}

func TestImageEStargz(t *testing.T) {
	for _, mt := range []string{ocispec.MediaTypeImageManifest, dockerManifest} {
		t.Run(mt, func(t *testing.T) {
			src, dst := testImage(mt), newMemStore()
			root, err := convert.Image(context.Background(), src, dst)
			if err != nil {
				t.Fatal(err)
			}
			if len(dst.tagged) != 1 || dst.tagged[0].Digest != root.Digest {
				t.Errorf("tagged %v, want %s once", dst.tagged, root.Digest)
			}
			out := check(t, dst, root)
			var srcConfig ocispec.Image
			var srcManifest ocispec.Manifest
			src.getJSON(src.root, &srcManifest)
			src.getJSON(srcManifest.Config, &srcConfig)
			if !slices.Equal(out.config.Config.Entrypoint, srcConfig.Config.Entrypoint) || len(out.config.History) != len(srcConfig.History) {
				t.Errorf("config lost fields: %+v", out.config)
			}
			want := map[int][]string{0: {"bin/sh", "etc/passwd"}, 1: {"bin/app"}, 2: {"etc/hosts"}}
			for i, l := range out.manifest.Layers {
				if l.MediaType != ocispec.MediaTypeImageLayerGzip {
					t.Errorf("layer %d: media type %q", i, l.MediaType)
				}
				if _, _, err := estargz.ParseAnnotations(l.Annotations); err != nil {
					t.Errorf("layer %d: %v", i, err)
				}
				if l.Annotations[convert.AnnotationOptions] == "" {
					t.Errorf("layer %d: no %s annotation", i, convert.AnnotationOptions)
				}
				names, files := tarFiles(t, out.tars[i])
				_, srcFiles := tarFiles(t, testLayers()[i].tar)
				for name, c := range srcFiles {
					if files[name] != c {
						t.Errorf("layer %d: %s differs", i, name)
					}
				}
				// The prioritised files come first, their parents before them,
				// then the landmark.
				var first []string
				for _, n := range names {
					if n == toc.PrefetchLandmark {
						break
					}
					if !strings.HasSuffix(n, "/") {
						first = append(first, n)
					}
				}
				if !slices.Equal(first, want[i]) {
					t.Errorf("layer %d: entries before the landmark %q, want %q (all: %q)", i, first, want[i], names)
				}
			}
			ps, err := prefetch.ParsePatterns(out.manifest.Annotations[prefetch.AnnotationPatterns])
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"bin/app", "bin/sh", "etc/passwd", "etc/hosts"} {
				if !ps.Match(name) {
					t.Errorf("patterns %q miss %s", ps.List(), name)
				}
			}
		})
	}
}

func TestImageZstdChunked(t *testing.T) {
	src, dst := testImage(ocispec.MediaTypeImageManifest), newMemStore()
	root, err := convert.Image(context.Background(), src, dst, convert.WithFormat(toc.FormatZstdChunked))
	if err != nil {
		t.Fatal(err)
	}
	out := check(t, dst, root)
	for i, l := range out.manifest.Layers {
		if l.MediaType != ocispec.MediaTypeImageLayerZstd {
			t.Errorf("layer %d: media type %q", i, l.MediaType)
		}
		if _, _, err := zstdchunked.ParseAnnotations(l.Annotations); err != nil {
			t.Errorf("layer %d: %v", i, err)
		}
		// zstd:chunked keeps the tar as it is: the DiffIDs stay.
		if !bytes.Equal(out.tars[i], testLayers()[i].tar) {
			t.Errorf("layer %d: tar changed", i)
		}
	}
	if out.manifest.Annotations[prefetch.AnnotationPatterns] == "" {
		t.Error("no patterns annotation")
	}
}

func TestImageWithoutPrefetch(t *testing.T) {
	src, dst := testImage(ocispec.MediaTypeImageManifest), newMemStore()
	root, err := convert.Image(context.Background(), src, dst, convert.WithoutPrefetch())
	if err != nil {
		t.Fatal(err)
	}
	out := check(t, dst, root)
	if _, ok := out.manifest.Annotations[prefetch.AnnotationPatterns]; ok {
		t.Error("patterns annotation without a plan")
	}
	for i := range out.tars {
		if names, _ := tarFiles(t, out.tars[i]); names[0] != toc.NoPrefetchLandmark {
			t.Errorf("layer %d starts with %q", i, names[0])
		}
	}
}

func TestImagePrefetchSources(t *testing.T) {
	ps, err := prefetch.ParsePatterns("usr/share/doc/*\ntmp/x")
	if err != nil {
		t.Fatal(err)
	}
	accesses, err := prefetch.ParseTrace(strings.NewReader("/usr/lib/big\n/bin/ls\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opt  convert.Option
		want map[int][]string
	}{
		{"patterns", convert.WithPrefetchPatterns(ps), map[int][]string{1: {"usr/share/doc/readme"}, 2: {"tmp/x"}}},
		{"trace", convert.WithPrefetchTrace(accesses), map[int][]string{0: {"usr/lib/big", "bin/ls"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := testImage(ocispec.MediaTypeImageManifest), newMemStore()
			root, err := convert.Image(context.Background(), src, dst, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			out := check(t, dst, root)
			for i := range out.tars {
				names, _ := tarFiles(t, out.tars[i])
				var first []string
				for _, n := range names {
					if n == toc.PrefetchLandmark || n == toc.NoPrefetchLandmark {
						break
					}
					if !strings.HasSuffix(n, "/") {
						first = append(first, n)
					}
				}
				if !slices.Equal(first, tc.want[i]) {
					t.Errorf("layer %d: prioritised %q, want %q", i, first, tc.want[i])
				}
			}
		})
	}
}

// TestImageReusesConvertedLayers converts an image, then the result with
// the same options: every layer is kept as it is, and the image too.
func TestImageReusesConvertedLayers(t *testing.T) {
	for _, opts := range [][]convert.Option{nil, {convert.WithoutPrefetch()}, {convert.WithFormat(toc.FormatZstdChunked)}} {
		src, mid := testImage(ocispec.MediaTypeImageManifest), newMemStore()
		first, err := convert.Image(context.Background(), src, mid, opts...)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		reused := 0
		dst := newMemStore()
		second, err := convert.Image(context.Background(), mid, dst, append(opts, convert.WithProgress(func(p convert.Progress) {
			mu.Lock()
			defer mu.Unlock()
			if p.Done && p.Reused {
				reused++
			}
		}))...)
		if err != nil {
			t.Fatal(err)
		}
		if second.Digest != first.Digest || reused != 3 {
			t.Errorf("second conversion: %s, %d layers reused; want %s, 3", second.Digest, reused, first.Digest)
		}
		check(t, dst, second)
		// Other options convert again.
		third, err := convert.Image(context.Background(), mid, newMemStore(), append(opts, convert.WithChunkSize(64<<10))...)
		if err != nil {
			t.Fatal(err)
		}
		if third.Digest == first.Digest {
			t.Error("another chunk size reused the layers")
		}
	}
}

func TestImageProgress(t *testing.T) {
	src, dst := testImage(ocispec.MediaTypeImageManifest), newMemStore()
	var mu sync.Mutex
	last := map[int]convert.Progress{}
	root, err := convert.Image(context.Background(), src, dst, convert.WithProgress(func(p convert.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := last[p.Index]; ok && (prev.Done || p.Read < prev.Read || p.Written < prev.Written) {
			t.Errorf("layer %d: report %+v after %+v", p.Index, p, prev)
		}
		last[p.Index] = p
	}))
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	dst.getJSON(root, &m)
	var sm ocispec.Manifest
	src.getJSON(src.root, &sm)
	for i := range m.Layers {
		p := last[i]
		if !p.Done || p.Read != sm.Layers[i].Size || p.Written != m.Layers[i].Size || p.Layer.Digest != sm.Layers[i].Digest {
			t.Errorf("layer %d: last report %+v; want done, read %d, written %d", i, p, sm.Layers[i].Size, m.Layers[i].Size)
		}
	}
}

// testIndex is an index of two platforms' images and an attestation.
func testIndex() *memStore {
	s := newMemStore()
	arm := ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	amd := s.addImage(ocispec.MediaTypeImageManifest, linuxAMD64, []string{"/bin/run"}, testLayers()...)
	amd.Platform = &linuxAMD64
	a := s.addImage(ocispec.MediaTypeImageManifest, arm, []string{"/bin/run"}, testLayers()[:2]...)
	a.Platform = &arm
	att := s.addImage(ocispec.MediaTypeImageManifest, ocispec.Platform{OS: "unknown", Architecture: "unknown"}, nil)
	att.Annotations = map[string]string{"vnd.docker.reference.type": "attestation-manifest"}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{amd, a, att}}
	idx.SchemaVersion = 2
	s.root = s.addJSON(ocispec.MediaTypeImageIndex, idx)
	return s
}

func TestImageIndex(t *testing.T) {
	for _, tc := range []struct {
		platforms []ocispec.Platform
		want      []string
	}{
		{nil, []string{"amd64", "arm64"}},
		{[]ocispec.Platform{{OS: "linux", Architecture: "arm64"}}, []string{"arm64"}},
		{[]ocispec.Platform{linuxAMD64, {OS: "linux", Architecture: "arm64", Variant: "v8"}}, []string{"amd64", "arm64"}},
	} {
		src, dst := testIndex(), newMemStore()
		root, err := convert.Image(context.Background(), src, dst, convert.WithPlatforms(tc.platforms...))
		if err != nil {
			t.Fatal(err)
		}
		if root.MediaType != ocispec.MediaTypeImageIndex {
			t.Fatalf("root media type %q", root.MediaType)
		}
		var idx ocispec.Index
		dst.getJSON(root, &idx)
		var archs []string
		for _, m := range idx.Manifests {
			archs = append(archs, m.Platform.Architecture)
			check(t, dst, m)
		}
		if !slices.Equal(archs, tc.want) {
			t.Errorf("%v: index of %q, want %q", tc.platforms, archs, tc.want)
		}
	}
}

func TestImageMissingPlatform(t *testing.T) {
	for _, src := range []*memStore{testIndex(), testImage(ocispec.MediaTypeImageManifest)} {
		dst := newMemStore()
		_, err := convert.Image(context.Background(), src, dst,
			convert.WithPlatforms(linuxAMD64, ocispec.Platform{OS: "linux", Architecture: "s390x"}))
		if !errors.Is(err, convert.ErrNoPlatform) || !strings.Contains(err.Error(), "linux/s390x") {
			t.Errorf("error %v, want ErrNoPlatform naming linux/s390x", err)
		}
		if len(dst.tagged) != 0 {
			t.Error("tagged after an error")
		}
	}
}

// withManifest rewrites the root manifest of s with edit.
func withManifest(s *memStore, edit func(*ocispec.Manifest)) *memStore {
	var m ocispec.Manifest
	s.getJSON(s.root, &m)
	edit(&m)
	s.root = s.addJSON(s.root.MediaType, m)
	return s
}

// withConfig rewrites the config of the root manifest of s with edit.
func withConfig(s *memStore, edit func(*ocispec.Image)) *memStore {
	return withManifest(s, func(m *ocispec.Manifest) {
		var c ocispec.Image
		s.getJSON(m.Config, &c)
		edit(&c)
		m.Config = s.addJSON(m.Config.MediaType, c)
	})
}

// nested returns an image under depth indexes.
func nested(depth int) *memStore {
	s := testImage(ocispec.MediaTypeImageManifest)
	for range depth {
		d := s.root
		d.Platform = &linuxAMD64
		idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{d}}
		idx.SchemaVersion = 2
		s.root = s.addJSON(ocispec.MediaTypeImageIndex, idx)
	}
	return s
}

// failingTarget fails the n-th blob push.
type failingTarget struct {
	*memStore
	mu     sync.Mutex
	pushes int
	failAt int
}

func (f *failingTarget) PushBlob(ctx context.Context, d ocispec.Descriptor, r io.Reader) error {
	f.mu.Lock()
	f.pushes++
	fail := f.pushes == f.failAt
	f.mu.Unlock()
	if fail {
		return errors.New("registry said 503")
	}
	return f.memStore.PushBlob(ctx, d, r)
}

// otherBlob is an image whose first layer blob is not the one its
// digest names, with the same tar inside: the gzip header's OS byte
// differs, so only the blob's digest tells.
func otherBlob() *memStore {
	s := testImage(ocispec.MediaTypeImageManifest)
	var m ocispec.Manifest
	s.getJSON(s.root, &m)
	b := bytes.Clone(s.blobs[m.Layers[0].Digest])
	b[9] ^= 1
	s.blobs[m.Layers[0].Digest] = b
	return s
}

func TestImageBadInput(t *testing.T) {
	big := strings.Repeat("x", convert.DefaultMaxManifestSize)
	for _, tc := range []struct {
		name  string
		src   func() *memStore
		opts  []convert.Option
		want  error
		layer int // the LayerError's index, -1 for none, -2 for any
	}{
		{"manifest longer than its descriptor", func() *memStore {
			s := testImage(ocispec.MediaTypeImageManifest)
			s.root.Size--
			return s
		}, nil, convert.ErrMismatch, -1},
		{"manifest of another digest", func() *memStore {
			s := testImage(ocispec.MediaTypeImageManifest)
			other := testImage(dockerManifest)
			s.blobs[s.root.Digest] = other.blobs[other.root.Digest]
			s.root.Size = other.root.Size
			return s
		}, nil, convert.ErrMismatch, -1},
		{"manifest over 4 MiB", func() *memStore {
			return withManifest(testImage(ocispec.MediaTypeImageManifest), func(m *ocispec.Manifest) {
				m.Annotations = map[string]string{"big": big}
			})
		}, nil, convert.ErrTooLarge, -1},
		{"unknown manifest media type", func() *memStore {
			s := withManifest(testImage(ocispec.MediaTypeImageManifest), func(m *ocispec.Manifest) {
				m.MediaType = "application/vnd.example.thing+json"
			})
			s.root.MediaType = ""
			return s
		}, nil, convert.ErrUnsupported, -1},
		{"media type other than the descriptor's", func() *memStore {
			s := testImage(ocispec.MediaTypeImageManifest)
			s.root.MediaType = ocispec.MediaTypeImageIndex
			return s
		}, nil, convert.ErrMismatch, -1},
		{"unknown layer media type", func() *memStore {
			return withManifest(testImage(ocispec.MediaTypeImageManifest), func(m *ocispec.Manifest) {
				m.Layers[1].MediaType = "application/vnd.in-toto+json"
			})
		}, nil, convert.ErrUnsupported, 1},
		{"gzip layer that is not gzip", func() *memStore {
			s := testImage(ocispec.MediaTypeImageManifest)
			return withManifest(s, func(m *ocispec.Manifest) {
				m.Layers[2] = s.add(ocispec.MediaTypeImageLayerGzip, testLayers()[2].tar)
			})
		}, nil, convert.ErrMismatch, 2},
		{"layer blob of another digest", otherBlob, nil, convert.ErrMismatch, 0},
		{"layer blob of another digest, streamed", otherBlob, []convert.Option{convert.WithoutPrefetch()}, convert.ErrMismatch, 0},
		{"DiffID other than the layer's", func() *memStore {
			return withConfig(testImage(ocispec.MediaTypeImageManifest), func(c *ocispec.Image) {
				c.RootFS.DiffIDs[0] = digest.FromString("other")
			})
		}, nil, convert.ErrMismatch, 0},
		{"DiffID other than the layer's, streamed", func() *memStore {
			return withConfig(testImage(ocispec.MediaTypeImageManifest), func(c *ocispec.Image) {
				c.RootFS.DiffIDs[0] = digest.FromString("other")
			})
		}, []convert.Option{convert.WithoutPrefetch()}, convert.ErrMismatch, 0},
		{"fewer DiffIDs than layers", func() *memStore {
			return withConfig(testImage(ocispec.MediaTypeImageManifest), func(c *ocispec.Image) {
				c.RootFS.DiffIDs = c.RootFS.DiffIDs[:2]
			})
		}, nil, convert.ErrInvalid, -1},
		{"more layers than allowed", func() *memStore { return testImage(ocispec.MediaTypeImageManifest) },
			[]convert.Option{convert.WithMaxLayers(2)}, convert.ErrLimit, -1},
		{"uncompressed layer over its bound", func() *memStore { return testImage(ocispec.MediaTypeImageManifest) },
			[]convert.Option{convert.WithMaxLayerSize(300 << 10)}, convert.ErrTooLarge, 0},
		{"layer blob over its bound", func() *memStore { return testImage(ocispec.MediaTypeImageManifest) },
			[]convert.Option{convert.WithMaxLayerSize(100)}, convert.ErrTooLarge, 0},
		{"more files than planning holds", func() *memStore { return testImage(ocispec.MediaTypeImageManifest) },
			[]convert.Option{convert.WithMaxFiles(4)}, convert.ErrTooLarge, -2},
		{"indexes nested too deep", func() *memStore { return nested(convert.DefaultMaxDepth + 1) }, nil, convert.ErrLimit, -1},
		{"index that claims to hold itself", func() *memStore {
			// No index can hold its own digest: a store that serves one
			// under another digest is caught.
			s := newMemStore()
			child := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("x")}
			for range 3 {
				idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{child}}
				idx.SchemaVersion = 2
				s.root = s.addJSON(ocispec.MediaTypeImageIndex, idx)
				child.Size = s.root.Size
			}
			s.blobs[child.Digest] = s.blobs[s.root.Digest]
			return s
		}, nil, convert.ErrMismatch, -1},
		{"more manifests than allowed", func() *memStore { return nested(2) },
			[]convert.Option{convert.WithMaxManifests(2)}, convert.ErrLimit, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := newMemStore()
			_, err := convert.Image(context.Background(), tc.src(), dst, tc.opts...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			var le *convert.LayerError
			if errors.As(err, &le) != (tc.layer != -1) || (tc.layer >= 0 && le.Index != tc.layer) {
				t.Errorf("error %v: want layer %d named", err, tc.layer)
			}
			if len(dst.tagged) != 0 {
				t.Error("tagged after an error")
			}
		})
	}
}

func TestImageFailedPushTagsNothing(t *testing.T) {
	for failAt := 1; failAt <= 4; failAt++ {
		dst := &failingTarget{memStore: newMemStore(), failAt: failAt}
		_, err := convert.Image(context.Background(), testImage(ocispec.MediaTypeImageManifest), dst)
		if err == nil || !strings.Contains(err.Error(), "503") {
			t.Errorf("push %d failing: error %v", failAt, err)
		}
		if len(dst.tagged) != 0 {
			t.Errorf("push %d failing: tagged", failAt)
		}
	}
}

// TestImageTightBudget converts one layer at a time when the budget
// holds no more, and never waits for memory it cannot get.
func TestImageTightBudget(t *testing.T) {
	for _, opts := range [][]convert.Option{
		{convert.WithMemoryBudget(1)},
		{convert.WithParallelism(1)},
		{convert.WithMemoryBudget(1), convert.WithoutPrefetch()},
	} {
		dst := newMemStore()
		root, err := convert.Image(context.Background(), testImage(ocispec.MediaTypeImageManifest), dst, opts...)
		if err != nil {
			t.Fatal(err)
		}
		check(t, dst, root)
	}
}

func TestImageNestedIndexes(t *testing.T) {
	dst := newMemStore()
	root, err := convert.Image(context.Background(), nested(convert.DefaultMaxDepth), dst)
	if err != nil {
		t.Fatal(err)
	}
	for range convert.DefaultMaxDepth {
		var idx ocispec.Index
		dst.getJSON(root, &idx)
		if len(idx.Manifests) != 1 {
			t.Fatalf("index of %d manifests", len(idx.Manifests))
		}
		root = idx.Manifests[0]
	}
	check(t, dst, root)
}

func TestImageCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dst := newMemStore()
	_, err := convert.Image(ctx, testImage(ocispec.MediaTypeImageManifest), dst, convert.WithProgress(func(convert.Progress) { cancel() }))
	if !errors.Is(err, context.Canceled) || len(dst.tagged) != 0 {
		t.Errorf("error %v, tagged %v; want context.Canceled and nothing tagged", err, dst.tagged)
	}
}
