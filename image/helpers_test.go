package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
)

// tfile is an entry of a test layer: a regular file, or a symbolic link
// when link is set.
type tfile struct{ name, data, link string }

func tarOf(t testing.TB, files ...tfile) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.data)), Typeflag: tar.TypeReg}
		if f.link != "" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.link, 0
		}
		require.NoError(t, tw.WriteHeader(h))
		_, err := tw.Write([]byte(f.data))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// layerKind is how a test layer is written.
type layerKind int

const (
	eStargz layerKind = iota
	zstdChunked
	plainGzip
	plainZstd
	plainTar
)

// testLayer is a layer blob and its descriptor.
type testLayer struct {
	desc   ocispec.Descriptor
	blob   []byte
	diffID digest.Digest
}

func makeLayer(t testing.TB, kind layerKind, tarData []byte, opts ...writer.Option) testLayer {
	var blob bytes.Buffer
	plain := func(mediaType string, w io.WriteCloser) testLayer {
		w.Write(tarData)
		require.NoError(t, w.Close())
		return testLayer{
			desc: ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(blob.Bytes()), Size: int64(blob.Len())},
			blob: blob.Bytes(), diffID: digest.FromBytes(tarData),
		}
	}
	switch kind {
	case plainGzip:
		return plain(ocispec.MediaTypeImageLayerGzip, gzip.NewWriter(&blob))
	case plainZstd:
		zw, err := zstd.NewWriter(&blob)
		require.NoError(t, err)
		return plain(ocispec.MediaTypeImageLayerZstd, zw)
	case plainTar:
		return plain(ocispec.MediaTypeImageLayer, nopCloser{&blob})
	case zstdChunked:
		opts = append(opts, writer.WithFormat(toc.FormatZstdChunked))
	}
	res, err := writer.Build(context.Background(), &blob, bytes.NewReader(tarData), opts...)
	require.NoError(t, err)
	mt := ocispec.MediaTypeImageLayerGzip
	if kind == zstdChunked {
		mt = ocispec.MediaTypeImageLayerZstd
	}
	return testLayer{
		desc: ocispec.Descriptor{MediaType: mt, Digest: res.Digest, Size: res.Size, Annotations: res.Annotations},
		blob: blob.Bytes(), diffID: res.DiffID,
	}
}

// memSource is an image.Source over blobs in memory. It records every
// call: see depth.
type memSource struct {
	root  ocispec.Descriptor
	blobs map[digest.Digest][]byte

	// resolveBody, when set, makes Resolve fetch the root's bytes, as a
	// registry's GET by tag does, so that Manifest of the root costs no
	// round trip of its own.
	resolveBody bool
	// fetchGate, if set, is called at the start of every Fetch, with the
	// blob's digest; manifestGate at the start of every Manifest call
	// that costs a round trip.
	fetchGate, manifestGate func(digest.Digest)

	mu       sync.Mutex
	calls    []call
	maxEnded int // the highest round-trip level of a call that ended
	rootSent bool
	fetched  map[digest.Digest]int64 // bytes fetched of each blob
}

// call is one call of the Source or of a fetcher it handed out. level
// is its round trip: 1 + the highest level of the calls that had ended
// when it started. A call that needs the answer of another thus has a
// higher level; calls made at once share one.
type call struct {
	op    string // "resolve", "manifest", "fetch"
	what  digest.Digest
	level int
}

// begin records the start of a call that costs a round trip and returns
// the function that records its end.
func (s *memSource) begin(op string, what digest.Digest) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := call{op: op, what: what, level: s.maxEnded + 1}
	s.calls = append(s.calls, c)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.maxEnded = max(s.maxEnded, c.level)
	}
}

func (s *memSource) log() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]call(nil), s.calls...)
}

func (s *memSource) add(data []byte) digest.Digest {
	if s.blobs == nil {
		s.blobs = make(map[digest.Digest][]byte)
	}
	d := digest.FromBytes(data)
	s.blobs[d] = data
	return d
}

func (s *memSource) Resolve(context.Context) (ocispec.Descriptor, error) {
	defer s.begin("resolve", s.root.Digest)()
	s.mu.Lock()
	s.rootSent = s.resolveBody
	s.mu.Unlock()
	return s.root, nil
}

func (s *memSource) Manifest(_ context.Context, desc ocispec.Descriptor) ([]byte, error) {
	s.mu.Lock()
	free := s.rootSent && desc.Digest == s.root.Digest
	s.rootSent = false
	s.mu.Unlock()
	if !free {
		defer s.begin("manifest", desc.Digest)()
		if s.manifestGate != nil {
			s.manifestGate(desc.Digest)
		}
	}
	data, ok := s.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("manifest %s: not found", desc.Digest)
	}
	return data, nil
}

// Blob hands out a fetcher without a request, as a registry does.
func (s *memSource) Blob(_ context.Context, desc ocispec.Descriptor) (fetcher.Fetcher, error) {
	data, ok := s.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: not found", desc.Digest)
	}
	return &memFetcher{s: s, d: desc.Digest, f: fetcher.FromReaderAt(bytes.NewReader(data), int64(len(data)))}, nil
}

type memFetcher struct {
	s *memSource
	d digest.Digest
	f *fetcher.ReaderAt
}

func (f *memFetcher) Size(ctx context.Context) (int64, error) {
	defer f.s.begin("size", f.d)()
	return f.f.Size(ctx)
}

func (f *memFetcher) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	end := f.s.begin("fetch", f.d)
	defer end()
	if f.s.fetchGate != nil {
		f.s.fetchGate(f.d)
	}
	return f.f.Fetch(ctx, ranges, func(r fetcher.Range, data []byte) error {
		f.s.mu.Lock()
		if f.s.fetched == nil {
			f.s.fetched = make(map[digest.Digest]int64)
		}
		f.s.fetched[f.d] += int64(len(data))
		f.s.mu.Unlock()
		return fn(r, data)
	})
}

// fetchedBytes returns how many bytes of blob d were fetched.
func (s *memSource) fetchedBytes(d digest.Digest) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetched[d]
}

// testImage is an image to put in a memSource.
type testImage struct {
	layers      []testLayer
	config      ocispec.Image
	annotations map[string]string // of the manifest
}

// store puts img's blobs, config and manifest into s and returns the
// manifest's descriptor.
func (img testImage) store(t testing.TB, s *memSource, platform *ocispec.Platform) ocispec.Descriptor {
	cfg := img.config
	cfg.RootFS.Type = "layers"
	if cfg.RootFS.DiffIDs == nil {
		for _, l := range img.layers {
			cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
		}
	}
	if platform != nil {
		cfg.Platform = *platform
	}
	cfgData, err := json.Marshal(cfg)
	require.NoError(t, err)
	m := ocispec.Manifest{
		MediaType:   ocispec.MediaTypeImageManifest,
		Config:      ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: s.add(cfgData), Size: int64(len(cfgData))},
		Annotations: img.annotations,
	}
	m.SchemaVersion = 2
	for _, l := range img.layers {
		s.add(l.blob)
		m.Layers = append(m.Layers, l.desc)
	}
	return s.addJSON(t, ocispec.MediaTypeImageManifest, m, platform)
}

func (s *memSource) addJSON(t testing.TB, mediaType string, v any, platform *ocispec.Platform) ocispec.Descriptor {
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return ocispec.Descriptor{MediaType: mediaType, Digest: s.add(data), Size: int64(len(data)), Platform: platform}
}

// index stores an image index of manifests and returns its descriptor.
func (s *memSource) index(t testing.TB, manifests ...ocispec.Descriptor) ocispec.Descriptor {
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: manifests}
	idx.SchemaVersion = 2
	return s.addJSON(t, ocispec.MediaTypeImageIndex, idx, nil)
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
