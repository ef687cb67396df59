package convert_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// memStore is an in-memory image store, both image.Source and
// image.Target: a stand-in for a registry repository or an OCI layout.
type memStore struct {
	mu        sync.Mutex
	root      ocispec.Descriptor
	blobs     map[digest.Digest][]byte // blobs, manifests and indexes
	tagged    []ocispec.Descriptor
	blobFetch int // Blob calls

	// With dir set, pushed blobs go to files there (files), not to
	// memory: benchmarks measure the heap of conversions of large images.
	dir   string
	files map[digest.Digest]string
}

func newMemStore() *memStore {
	return &memStore{blobs: make(map[digest.Digest][]byte), files: make(map[digest.Digest]string)}
}

// newDiskStore returns a store that keeps blobs in files under dir.
func newDiskStore(dir string) *memStore {
	s := newMemStore()
	s.dir = dir
	return s
}

func (s *memStore) Resolve(context.Context) (ocispec.Descriptor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root.Digest == "" {
		return ocispec.Descriptor{}, fmt.Errorf("memstore: no root")
	}
	return s.root, nil
}

func (s *memStore) Manifest(_ context.Context, d ocispec.Descriptor) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("memstore: manifest %s unknown", d.Digest)
	}
	return b, nil
}

func (s *memStore) Blob(_ context.Context, d ocispec.Descriptor) (fetcher.Fetcher, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blobFetch++
	if name, ok := s.files[d.Digest]; ok {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		return fetcher.FromReaderAt(f, d.Size), nil
	}
	b, ok := s.blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("memstore: blob %s unknown", d.Digest)
	}
	return fetcher.FromReaderAt(bytes.NewReader(b), int64(len(b))), nil
}

func (s *memStore) Has(_ context.Context, d ocispec.Descriptor) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.blobs[d.Digest]
	_, onDisk := s.files[d.Digest]
	return ok || onDisk, nil
}

func (s *memStore) PushBlob(_ context.Context, d ocispec.Descriptor, r io.Reader) error {
	if s.dir != "" {
		return s.pushFile(d, r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return s.PushManifest(context.Background(), d, b)
}

func (s *memStore) pushFile(d ocispec.Descriptor, r io.Reader) error {
	f, err := os.CreateTemp(s.dir, "blob-*")
	if err != nil {
		return err
	}
	defer f.Close()
	h := d.Digest.Verifier()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		return err
	}
	if n != d.Size || !h.Verified() {
		return fmt.Errorf("memstore: content is not %s", d.Digest)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[d.Digest] = f.Name()
	return nil
}

func (s *memStore) PushManifest(_ context.Context, d ocispec.Descriptor, b []byte) error {
	if int64(len(b)) != d.Size || digest.FromBytes(b) != d.Digest {
		return fmt.Errorf("memstore: content is not %s", d.Digest)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blobs[d.Digest] = b
	return nil
}

func (s *memStore) Tag(_ context.Context, d ocispec.Descriptor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[d.Digest]; !ok {
		return fmt.Errorf("memstore: tagging %s, which it does not hold", d.Digest)
	}
	s.tagged = append(s.tagged, d)
	s.root = d
	return nil
}

// add stores b and returns its descriptor.
func (s *memStore) add(mediaType string, b []byte) ocispec.Descriptor {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	s.blobs[d.Digest] = b
	return d
}

func (s *memStore) addJSON(mediaType string, v any) ocispec.Descriptor {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return s.add(mediaType, b)
}

func (s *memStore) get(d ocispec.Descriptor) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blobs[d.Digest]
}

func (s *memStore) getJSON(d ocispec.Descriptor, v any) {
	if err := json.Unmarshal(s.get(d), v); err != nil {
		panic(err)
	}
}

// file is one entry of a test layer: a regular file unless link is set.
type file struct {
	name, content, symlink string
	mode                   int64
}

func tarOf(files ...file) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.content))}
		if f.mode != 0 {
			h.Mode = f.mode
		}
		switch {
		case f.symlink != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.symlink, 0
		case f.name[len(f.name)-1] == '/':
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(f.content))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// layer is a test layer: its tar, how to compress it, and its media type.
type layer struct {
	tar       []byte
	mediaType string
}

const (
	dockerGzip     = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	dockerConfig   = "application/vnd.docker.container.image.v1+json"
)

func compress(t []byte, mediaType string) []byte {
	var buf bytes.Buffer
	switch mediaType {
	case ocispec.MediaTypeImageLayerGzip, dockerGzip:
		zw := gzip.NewWriter(&buf)
		zw.Write(t)
		zw.Close()
	case ocispec.MediaTypeImageLayerZstd:
		zw, _ := zstd.NewWriter(&buf)
		zw.Write(t)
		zw.Close()
	default:
		return t
	}
	return buf.Bytes()
}

// addImage stores a manifest of the layers with a config running argv
// and returns the manifest's descriptor.
func (s *memStore) addImage(manifestType string, platform ocispec.Platform, argv []string, layers ...layer) ocispec.Descriptor {
	img := ocispec.Image{
		Platform: platform,
		Config:   ocispec.ImageConfig{Entrypoint: argv, Env: []string{"PATH=/bin"}},
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	m := ocispec.Manifest{MediaType: manifestType}
	m.SchemaVersion = 2
	for i, l := range layers {
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, digest.FromBytes(l.tar))
		img.History = append(img.History, ocispec.History{CreatedBy: fmt.Sprintf("layer %d", i)})
		m.Layers = append(m.Layers, s.add(l.mediaType, compress(l.tar, l.mediaType)))
	}
	configType := ocispec.MediaTypeImageConfig
	if manifestType == dockerManifest {
		configType = dockerConfig
	}
	m.Config = s.addJSON(configType, img)
	return s.addJSON(manifestType, m)
}
