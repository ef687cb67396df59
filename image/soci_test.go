package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/toc/soci"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
)

// sociSpanSize is the span size of the test zTOCs: small, so that a
// layer of a few hundred KiB has several spans.
const sociSpanSize = 64 << 10

// sociTree returns a tar of files big enough to need several spans, and
// the content of each.
func sociTree(t testing.TB, seed uint64, files int) ([]byte, map[string]string) {
	rng := rand.New(rand.NewPCG(seed, 1))
	words := []string{"alpha ", "beta ", "gamma ", "delta ", "epsilon ", "zeta\n"}
	var tf []tfile
	want := make(map[string]string)
	for i := range files {
		var b bytes.Buffer
		for b.Len() < 20<<10+rng.IntN(60<<10) {
			b.WriteString(words[rng.IntN(len(words))])
			fmt.Fprintf(&b, "%d ", rng.Uint32())
		}
		name := fmt.Sprintf("usr/lib/f%03d", i)
		tf = append(tf, tfile{name: name, data: b.String()})
		want[name] = b.String()
	}
	return tarOf(t, tf...), want
}

// sociArtifacts is a SOCI index made for a test image.
type sociArtifacts struct {
	ztocs map[int]*soci.Ztoc // by layer
	index []byte             // the encoded SOCI index
	desc  ocispec.Descriptor // its descriptor
}

// makeSOCIIndex indexes the layers whose numbers are in indexed, stores
// their zTOCs, the prefetch artifacts of prefetches (by layer) and the v2
// SOCI index in s.
func makeSOCIIndex(t testing.TB, s *memSource, layers []testLayer, indexed []int, prefetches map[int][]soci.PrefetchSpan) sociArtifacts {
	a := sociArtifacts{ztocs: make(map[int]*soci.Ztoc)}
	m := soci.IndexManifest{Version: soci.IndexV2, Annotations: map[string]string{soci.AnnotationBuildToolIdentifier: "test"}}
	for _, i := range indexed {
		l := layers[i]
		c := soci.Gzip
		if l.desc.MediaType == ocispec.MediaTypeImageLayer {
			c = soci.Uncompressed
		}
		z, err := soci.Index(context.Background(), bytes.NewReader(l.blob), c, soci.WithSpanSize(sociSpanSize))
		require.NoError(t, err)
		blob, err := soci.Encode(z)
		require.NoError(t, err)
		s.add(blob)
		a.ztocs[i] = z
		m.Ztocs = append(m.Ztocs, soci.NewZtocRef(blob, l.desc, sociSpanSize))
		if spans := prefetches[i]; spans != nil {
			pb, err := soci.EncodePrefetch(spans)
			require.NoError(t, err)
			s.add(pb)
			m.Prefetches = append(m.Prefetches, soci.NewPrefetchRef(pb, l.desc.Digest))
		}
	}
	var err error
	a.index, err = m.Encode()
	require.NoError(t, err)
	s.add(soci.EmptyConfig())
	a.desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: s.add(a.index), Size: int64(len(a.index))}
	return a
}

// sociImage stores an image of a plain gzip layer with a zTOC, a small
// plain gzip layer without one and an eStargz layer, bound to its v2
// SOCI index as soci convert binds it: the manifest annotated with the
// index's digest, both listed in the root index. It returns the source,
// the index made, and every file's content by layer.
func sociImage(t testing.TB, prefetches map[int][]soci.PrefetchSpan) (*memSource, sociArtifacts, []map[string]string) {
	s := &memSource{}
	big, bigFiles := sociTree(t, 1, 12)
	small := tarOf(t, tfile{name: "etc/small", data: "small"})
	top := tarOf(t, tfile{name: "etc/top", data: "top"})
	layers := []testLayer{makeLayer(t, plainGzip, big), makeLayer(t, plainGzip, small), makeLayer(t, eStargz, top)}
	a := makeSOCIIndex(t, s, layers, []int{0}, prefetches)
	img := testImage{layers: layers, annotations: map[string]string{soci.AnnotationIndexDigest: a.desc.Digest.String()}}
	mdesc := img.store(t, s, amd64)
	mdesc.Annotations = img.annotations
	s.root = s.index(t, soci.IndexDescriptor(a.index, mdesc), mdesc)
	return s, a, []map[string]string{bigFiles, {"etc/small": "small"}, {"etc/top": "top"}}
}

// TestOpenSOCIFindsV2Index checks that Open finds the v2 SOCI index the
// image index lists with the manifest, fetches it with the manifest, and
// the zTOC with the config and the other layers: three round trips.
func TestOpenSOCIFindsV2Index(t *testing.T) {
	src, a, _ := sociImage(t, nil)
	src.resolveBody = true
	var manifests, fetches barrier
	src.manifestGate = manifests.gate(2) // the manifest and the SOCI index
	src.fetchGate = fetches.gate(3)      // the config, the zTOC, the eStargz layer's index
	img, err := Open(context.Background(), src, WithPlatform("linux/amd64"))
	require.NoError(t, err)
	defer img.Close()
	require.False(t, manifests.stuck(), "the SOCI index did not come with the manifest")
	require.False(t, fetches.stuck(), "the zTOC did not come with the config")

	ztoc := soci.NewZtocRef(mustEncode(t, a.ztocs[0]), img.Manifest().Layers[0], sociSpanSize).Descriptor
	levels := make(map[digest.Digest]int)
	for _, c := range src.log() {
		require.LessOrEqual(t, c.level, 3, "%s %s", c.op, c.what)
		levels[c.what] = c.level
	}
	require.Equal(t, 2, levels[a.desc.Digest], "the SOCI index comes with the manifest")
	require.Equal(t, 3, levels[ztoc.Digest], "the zTOC comes with the config")
	require.Equal(t, ztoc.Size, src.fetchedBytes(ztoc.Digest))
	layers := img.Layers()
	require.NoError(t, layers[0].Err)
	require.Equal(t, toc.FormatSOCI, layers[0].Format)
	require.Zero(t, src.fetchedBytes(layers[0].Descriptor.Digest), "Open fetched the layer, not only its zTOC")
	require.ErrorIs(t, layers[1].Err, ErrNotSeekable, "a layer the index lacks")
	require.ErrorContains(t, layers[1].Err, "no zTOC in SOCI index "+a.desc.Digest.String())
	require.NoError(t, layers[2].Err)
}

// TestOpenSOCIReads checks that the files of a layer served by its zTOC
// read back as they were, a read fetching no span past the file's (the
// spans before it may be fetched to check the window the file's first
// span resumes from), and that the layers the index lacks are fetched
// whole.
func TestOpenSOCIReads(t *testing.T) {
	src, a, files := sociImage(t, nil)
	img, err := Open(context.Background(), src, WithPlatform("linux/amd64"), WithFetchWhole(t.TempDir()))
	require.NoError(t, err)
	defer img.Close()
	require.NoError(t, img.Err())
	layers := img.Layers()
	require.Equal(t, []bool{false, true, false}, []bool{layers[0].Whole, layers[1].Whole, layers[2].Whole})
	root, err := img.FS()
	require.NoError(t, err)

	z := a.ztocs[0]
	starts, err := z.SpanStarts()
	require.NoError(t, err)
	cp, err := soci.DecodeCheckpoints(z.Checkpoints)
	require.NoError(t, err)
	blob := layers[0].Descriptor
	for _, f := range z.Files {
		if f.Type != "reg" {
			continue
		}
		data, err := fs.ReadFile(root, f.Name)
		require.NoError(t, err, f.Name)
		require.Equal(t, files[0][f.Name], string(data), f.Name)
		// Read in tar order, each span fetched once: what was fetched
		// ends with the file's last span. Spans that start inside a byte
		// share it with the span before, which counts it again.
		last := sort.Search(len(starts), func(k int) bool { return starts[k] >= f.Offset+f.Size }) - 1
		end := blob.Size
		if last+1 < len(cp.Points) {
			end = cp.Points[last+1].In
		}
		require.LessOrEqual(t, src.fetchedBytes(blob.Digest), end+int64(last), "%s: fetched past its spans", f.Name)
	}
	for i := 1; i < 3; i++ {
		for name, want := range files[i] {
			data, err := fs.ReadFile(root, name)
			require.NoError(t, err)
			require.Equal(t, want, string(data))
		}
	}
	require.NoError(t, img.VerifyLayer(context.Background(), 0))
}

func mustEncode(t testing.TB, z *soci.Ztoc) []byte {
	b, err := soci.Encode(z)
	require.NoError(t, err)
	return b
}

// barrier makes the calls of a gate wait until n of them have arrived,
// or a minute has passed (stuck).
type barrier struct {
	arrived atomic.Int32
	release chan struct{}
	once    sync.Once
	late    atomic.Bool
}

func (b *barrier) gate(n int32) func(digest.Digest) {
	b.release = make(chan struct{})
	time.AfterFunc(time.Minute, func() { b.late.Store(true); b.once.Do(func() { close(b.release) }) })
	return func(digest.Digest) {
		if b.arrived.Add(1) == n {
			b.once.Do(func() { close(b.release) })
		}
		<-b.release
	}
}

func (b *barrier) stuck() bool { return b.late.Load() }

// TestOpenSOCIManifestAlone opens a manifest bound to its v2 SOCI index
// by its annotation alone, as a pull by the manifest's digest sees it:
// the index is asked for by digest, with the config and the other
// layers.
func TestOpenSOCIManifestAlone(t *testing.T) {
	src, a, _ := sociImage(t, nil)
	var idx ocispec.Index
	require.NoError(t, jsonUnmarshal(src.blobs[src.root.Digest], &idx))
	src.root = idx.Manifests[1]
	src.resolveBody = true
	var first barrier // the SOCI index, the config, the eStargz layer's index
	src.manifestGate = first.gate(3)
	src.fetchGate = src.manifestGate
	img, err := Open(context.Background(), src)
	require.NoError(t, err)
	defer img.Close()
	require.False(t, first.stuck())
	levels := make(map[digest.Digest]int)
	for _, c := range src.log() {
		levels[c.what] = c.level
	}
	require.Equal(t, 2, levels[a.desc.Digest])
	require.Equal(t, 2, levels[img.Manifest().Config.Digest])
	ztoc := digest.FromBytes(mustEncode(t, a.ztocs[0]))
	require.Equal(t, 3, levels[ztoc])
	require.ErrorIs(t, img.Layers()[1].Err, ErrNotSeekable)
}

// referrerSource is a memSource that lists referrers.
type referrerSource struct {
	*memSource
	referrers map[digest.Digest][]ocispec.Descriptor
	err       error
	asked     int
}

func (s *referrerSource) Referrers(_ context.Context, subject ocispec.Descriptor, artifactType string) ([]ocispec.Descriptor, error) {
	defer s.begin("referrers", subject.Digest)()
	s.asked++
	var out []ocispec.Descriptor
	for _, d := range s.referrers[subject.Digest] {
		if d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	return out, s.err
}

// v1Image stores the image of sociImage, bound to a v1 SOCI index of
// subject (the image manifest if nil) instead of a v2 one.
func v1Image(t testing.TB, subject *ocispec.Descriptor) (*referrerSource, sociArtifacts) {
	s, a, _ := sociImage(t, nil)
	var idx ocispec.Index
	require.NoError(t, jsonUnmarshal(s.blobs[s.root.Digest], &idx))
	mdesc := s.rewrite(t, idx.Manifests[1], func(m *ocispec.Manifest) { m.Annotations = nil })
	if subject == nil {
		subject = &mdesc
	}
	var m ocispec.Manifest
	require.NoError(t, jsonUnmarshal(a.index, &m))
	m.Config.MediaType = soci.MediaTypeIndexV1
	m.Subject = subject
	a.desc = s.addJSON(t, ocispec.MediaTypeImageManifest, m, nil)
	a.desc.ArtifactType = soci.MediaTypeIndexV1
	a.index = s.blobs[a.desc.Digest]
	s.root = mdesc
	rs := &referrerSource{memSource: s, referrers: map[digest.Digest][]ocispec.Descriptor{
		mdesc.Digest: {{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: "application/example", Digest: "sha256:" + digest.Digest(strings.Repeat("0", 64)), Size: 1}, a.desc},
	}}
	return rs, a
}

// TestOpenSOCIV1 checks that Open finds a v1 SOCI index through the
// source's referrers, and only the one whose subject is the manifest.
func TestOpenSOCIV1(t *testing.T) {
	src, a := v1Image(t, nil)
	img, err := Open(context.Background(), src)
	require.NoError(t, err)
	defer img.Close()
	require.Equal(t, 1, src.asked)
	ztoc := digest.FromBytes(mustEncode(t, a.ztocs[0]))
	require.Equal(t, int64(len(mustEncode(t, a.ztocs[0]))), src.fetchedBytes(ztoc))
	require.ErrorContains(t, img.Layers()[1].Err, "no zTOC in SOCI index "+a.desc.Digest.String())

	other, _ := v1Image(t, &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("other"), Size: 2})
	img, err = Open(context.Background(), other)
	require.NoError(t, err)
	defer img.Close()
	for _, i := range []int{0, 1} {
		err := img.Layers()[i].Err
		require.ErrorIs(t, err, ErrInvalid, "a v1 index of another manifest")
		require.ErrorIs(t, err, soci.ErrInvalidIndex)
		require.NotErrorIs(t, err, ErrNotSeekable)
	}
	require.NoError(t, img.Layers()[2].Err)

	// A source that fails to list referrers leaves the layers as they
	// are without an index, saying why.
	src, _ = v1Image(t, nil)
	src.err = errors.New("no referrers API")
	img, err = Open(context.Background(), src)
	require.NoError(t, err)
	defer img.Close()
	require.ErrorIs(t, img.Layers()[0].Err, ErrNotSeekable)
	require.ErrorContains(t, img.Layers()[0].Err, "no referrers API")
}

// TestOpenWithoutSOCI checks that WithoutSOCI looks for no index.
func TestOpenWithoutSOCI(t *testing.T) {
	src, a := v1Image(t, nil)
	img, err := Open(context.Background(), src, WithoutSOCI())
	require.NoError(t, err)
	defer img.Close()
	require.Zero(t, src.asked)
	require.ErrorIs(t, img.Layers()[0].Err, ErrNotSeekable)

	s, a, _ := sociImage(t, nil)
	img, err = Open(context.Background(), s, WithoutSOCI(), WithPlatform("linux/amd64"))
	require.NoError(t, err)
	defer img.Close()
	for _, c := range s.log() {
		require.NotEqual(t, a.desc.Digest, c.what, "the SOCI index was fetched")
	}
	require.ErrorIs(t, img.Layers()[0].Err, ErrNotSeekable)
}

// TestOpenSOCIBad checks that a SOCI index or zTOC that fails its
// digest, its bounds or its decoding fails the layers it may serve, with
// a typed error naming them, and never falls back.
func TestOpenSOCIBad(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(s *memSource, a sociArtifacts)
		opts   []Option
		is     []error
		layers []int // the layers that fail
	}{
		{name: "index digest", change: func(s *memSource, a sociArtifacts) {
			s.blobs[a.desc.Digest] = bytes.Replace(a.index, []byte("test"), []byte("tesT"), 1)
		}, is: []error{ErrDigestMismatch}, layers: []int{0, 1}},
		{name: "index missing", change: func(s *memSource, a sociArtifacts) {
			delete(s.blobs, a.desc.Digest)
		}, layers: []int{0, 1}},
		{name: "index too large", opts: []Option{WithSOCIOptions(soci.WithMaxIndexSize(100))},
			is: []error{ErrLimit, soci.ErrIndexTooLarge}, layers: []int{0, 1}},
		{name: "zTOC too large", opts: []Option{WithSOCIOptions(soci.WithMaxZtocSize(100))},
			is: []error{ErrLimit, soci.ErrIndexTooLarge}, layers: []int{0, 1}},
		{name: "zTOC digest", change: func(s *memSource, a sociArtifacts) {
			d := digest.FromBytes(mustEncode(t, a.ztocs[0]))
			b := bytes.Clone(s.blobs[d])
			b[len(b)/2] ^= 1
			s.blobs[d] = b
		}, is: []error{ErrDigestMismatch}, layers: []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, a, _ := sociImage(t, nil)
			if tc.change != nil {
				tc.change(src, a)
			}
			img, err := Open(context.Background(), src, append(tc.opts, WithPlatform("linux/amd64"), WithFetchWhole(t.TempDir()))...)
			require.NoError(t, err)
			defer img.Close()
			for i, l := range img.Layers() {
				if !slices.Contains(tc.layers, i) {
					require.NoError(t, l.Err, "layer %d", i)
					continue
				}
				require.Error(t, l.Err, "layer %d", i)
				require.NotErrorIs(t, l.Err, ErrNotSeekable, "layer %d", i)
				require.ErrorContains(t, l.Err, fmt.Sprintf("layer %d (%s)", i, l.Descriptor.Digest))
				for _, is := range tc.is {
					require.ErrorIs(t, l.Err, is, "layer %d", i)
				}
			}
			if tc.name == "zTOC too large" {
				require.Zero(t, src.fetchedBytes(digest.FromBytes(mustEncode(t, a.ztocs[0]))), "fetched before the bound was checked")
			}
		})
	}
}

// TestSOCIPrefetchPlan checks that a prefetch artifact's spans become
// the byte ranges of the files they hold: whole files where a span range
// holds all of one, the part it holds otherwise.
func TestSOCIPrefetchPlan(t *testing.T) {
	tarData, _ := sociTree(t, 3, 24)
	l := makeLayer(t, plainGzip, tarData)
	z, err := soci.Index(context.Background(), bytes.NewReader(l.blob), soci.Gzip, soci.WithSpanSize(sociSpanSize))
	require.NoError(t, err)
	starts, err := z.SpanStarts()
	require.NoError(t, err)
	require.Greater(t, len(starts), 4)
	spans := []soci.PrefetchSpan{{Start: 1, End: 1}, {Start: 3, End: int32(len(starts) - 1)}}
	s := &sociLayer{blob: mustEncode(t, z), prefetch: spans}
	p, err := s.plan(2, nil)
	require.NoError(t, err)

	// Every byte of the spans' ranges that a file holds, and no other.
	type span struct{ lo, hi int64 }
	ranges := []span{{starts[1], starts[2]}, {starts[3], z.UncompressedArchiveSize}}
	var want []prefetch.Item
	for _, r := range ranges {
		for _, f := range z.Files {
			from, to := max(r.lo, f.Offset), min(r.hi, f.Offset+f.Size)
			if f.Type != "reg" || from >= to {
				continue
			}
			it := prefetch.Item{Layer: 2, Path: f.Name, Priority: len(want), Reason: ReasonSOCIPrefetch}
			if from > f.Offset || to < f.Offset+f.Size {
				it.Offset, it.Length = from-f.Offset, to-from
			}
			want = append(want, it)
		}
	}
	require.Equal(t, want, p.Items())
	require.True(t, slices.ContainsFunc(p.Items(), func(it prefetch.Item) bool { return it.WholeFile() }))
	require.True(t, slices.ContainsFunc(p.Items(), func(it prefetch.Item) bool { return !it.WholeFile() }))

	s.prefetch = []soci.PrefetchSpan{{Start: 0, End: int32(len(starts))}}
	_, err = s.plan(2, nil)
	require.ErrorIs(t, err, soci.ErrInvalidIndex, "a span the zTOC does not have")
	require.ErrorIs(t, err, ErrInvalid)
}

// TestOpenSOCIPrefetch checks that the prefetch artifact of a layer
// feeds Plan, and that Prefetch fetches its spans' files into the cache,
// where reads find them.
func TestOpenSOCIPrefetch(t *testing.T) {
	src, a, _ := sociImage(t, map[int][]soci.PrefetchSpan{0: {{Start: 1, End: 1}}})
	img, err := Open(context.Background(), src, WithPlatform("linux/amd64"), WithFetchWhole(t.TempDir()),
		WithReaderOptions(reader.WithCache(cache.NewMemory(64<<20))))
	require.NoError(t, err)
	defer img.Close()
	plan, err := img.Plan(context.Background())
	require.NoError(t, err)
	var planned []prefetch.Item
	for _, it := range plan.Items() {
		if it.Reason == ReasonSOCIPrefetch {
			require.Equal(t, 0, it.Layer)
			planned = append(planned, it)
		}
	}
	require.NotEmpty(t, planned)

	e, err := img.Prefetch(context.Background())
	require.NoError(t, err)
	require.NoError(t, e.Wait())
	cp, err := soci.DecodeCheckpoints(a.ztocs[0].Checkpoints)
	require.NoError(t, err)
	blob := img.Layers()[0].Descriptor.Digest
	require.GreaterOrEqual(t, src.fetchedBytes(blob), cp.Points[2].In-cp.Points[1].CompressedStart(), "span 1 fetched")
	require.Less(t, src.fetchedBytes(blob), img.Layers()[0].Descriptor.Size, "more than the spans fetched")
}
