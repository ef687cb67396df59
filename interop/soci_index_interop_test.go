package interop

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	socipkg "github.com/awslabs/soci-snapshotter/soci"
	socistore "github.com/awslabs/soci-snapshotter/soci/store"
	"github.com/awslabs/soci-snapshotter/ztoc"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lazylayer/lazylayer/convert"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/interop/internal/corpus"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/toc/soci"
)

// blobStore is an in-memory image.Source and image.Target.
type blobStore struct {
	mu    sync.Mutex
	root  ocispec.Descriptor
	blobs map[digest.Digest][]byte
}

func (s *blobStore) Resolve(context.Context) (ocispec.Descriptor, error) { return s.root, nil }

func (s *blobStore) get(d digest.Digest) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[d]
	if !ok {
		return nil, fmt.Errorf("blob %s: not found", d)
	}
	return b, nil
}

func (s *blobStore) Manifest(_ context.Context, d ocispec.Descriptor) ([]byte, error) {
	return s.get(d.Digest)
}

func (s *blobStore) Blob(_ context.Context, d ocispec.Descriptor) (fetcher.Fetcher, error) {
	b, err := s.get(d.Digest)
	if err != nil {
		return nil, err
	}
	return fetcher.FromReaderAt(bytes.NewReader(b), int64(len(b))), nil
}

func (s *blobStore) Has(_ context.Context, d ocispec.Descriptor) (bool, error) {
	_, err := s.get(d.Digest)
	return err == nil, nil
}

func (s *blobStore) PushBlob(_ context.Context, d ocispec.Descriptor, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return s.PushManifest(context.Background(), d, b)
}

func (s *blobStore) PushManifest(_ context.Context, d ocispec.Descriptor, b []byte) error {
	if digest.FromBytes(b) != d.Digest {
		return fmt.Errorf("blob is not %s", d.Digest)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blobs[d.Digest] = b
	return nil
}

func (s *blobStore) Tag(_ context.Context, d ocispec.Descriptor) error {
	s.root = d
	return nil
}

func (s *blobStore) add(mediaType string, b []byte) ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	s.blobs[d.Digest] = b
	return d
}

// sociTestImage is a single-manifest OCI image of two gzip layers (the
// generated all-kinds tree, and GOROOT's src/net) and a small one.
func sociTestImage(t *testing.T) *blobStore {
	s := &blobStore{blobs: make(map[digest.Digest][]byte)}
	gz := func(tarData []byte) []byte {
		var buf bytes.Buffer
		w, _ := gzip.NewWriterLevel(&buf, 6)
		w.Write(tarData)
		w.Close()
		return buf.Bytes()
	}
	tars := [][]byte{corpus.KindsTar(t), goSrcTar(t, "net"), tarOfFiles(t, map[string]string{"etc/hostname": "small\n"})}
	var m ocispec.Manifest
	m.SchemaVersion, m.MediaType = 2, ocispec.MediaTypeImageManifest
	img := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, RootFS: ocispec.RootFS{Type: "layers"}}
	for _, tb := range tars {
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, digest.FromBytes(tb))
		m.Layers = append(m.Layers, s.add(ocispec.MediaTypeImageLayerGzip, gz(tb)))
	}
	cb, _ := json.Marshal(img)
	m.Config = s.add(ocispec.MediaTypeImageConfig, cb)
	mb, _ := json.Marshal(m)
	s.root = s.add(ocispec.MediaTypeImageManifest, mb)
	return s
}

// sociConvert runs soci-snapshotter's own Convert (soci convert) on the
// image src holds, in a containerd content store, and returns what it
// wrote: its OCI index's descriptor and every blob.
func sociConvert(t *testing.T, src *blobStore, spanSize int64, prefetchPaths []string) (ocispec.Descriptor, *blobStore) {
	ctx := context.Background()
	dir := t.TempDir()
	cs, err := local.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	for d, b := range src.blobs {
		if err := content.WriteBlob(ctx, cs, d.String(), bytes.NewReader(b), ocispec.Descriptor{Digest: d, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
	}
	store, err := socistore.NewSociStore(filepath.Join(dir, "soci"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := socipkg.NewDB(filepath.Join(dir, "artifacts.db"))
	if err != nil {
		t.Fatal(err)
	}
	opts := []socipkg.BuilderOption{socipkg.WithMinLayerSize(100 << 10), socipkg.WithSpanSize(spanSize),
		socipkg.WithBuildToolIdentifier(sociTool), socipkg.WithArtifactsDb(db)}
	if len(prefetchPaths) > 0 {
		opts = append(opts, socipkg.WithPrefetchPaths(prefetchPaths))
	}
	b, err := socipkg.NewIndexBuilder(cs, store, opts...)
	if err != nil {
		t.Fatal(err)
	}
	root, err := b.Convert(ctx, images.Image{Name: "test", Target: src.root}, socipkg.ConvertWithNoGarbageCollectionLabels())
	if err != nil {
		t.Fatal(err)
	}
	// Their index, manifests and SOCI blobs are in their store, the
	// layers and config in the content store.
	out := &blobStore{blobs: make(map[digest.Digest][]byte), root: *root}
	for d, b := range src.blobs {
		out.blobs[d] = b
	}
	err = filepath.Walk(filepath.Join(dir, "soci", "blobs"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out.blobs[digest.FromBytes(b)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return *root, out
}

// TestSociIndexInterop converts one image with soci-snapshotter's Convert
// and with convert.WithSOCI, and checks that both make the same image,
// byte for byte: the same zTOCs, SOCI index, annotated manifest and
// image index. Each side's parser reads the other's.
func TestSociIndexInterop(t *testing.T) {
	ctx := context.Background()
	src := sociTestImage(t)
	const span = 256 << 10
	theirRoot, theirs := sociConvert(t, src, span, nil)

	ours := &blobStore{blobs: make(map[digest.Digest][]byte)}
	ourRoot, err := convert.Image(ctx, src, ours, convert.WithoutPrefetch(),
		convert.WithSOCI(convert.SOCISpanSize(span), convert.SOCIMinLayerSize(100<<10), convert.SOCIBuildTool(sociTool)))
	if err != nil {
		t.Fatal(err)
	}

	var ourIndex, theirIndex ocispec.Index
	mustJSON(t, ours, ourRoot.Digest, &ourIndex)
	mustJSON(t, theirs, theirRoot.Digest, &theirIndex)
	if len(ourIndex.Manifests) != 2 || len(theirIndex.Manifests) != 2 {
		t.Fatalf("indexes of %d and %d entries", len(ourIndex.Manifests), len(theirIndex.Manifests))
	}
	// Field by field first, so that a difference says where it is.
	for i := range 2 {
		o, th := ourIndex.Manifests[i], theirIndex.Manifests[i]
		if o.MediaType != th.MediaType || o.ArtifactType != th.ArtifactType || o.Size != th.Size || o.Digest != th.Digest {
			t.Errorf("entry %d: ours %s %q %d %s, theirs %s %q %d %s", i, o.MediaType, o.ArtifactType, o.Size, o.Digest, th.MediaType, th.ArtifactType, th.Size, th.Digest)
		}
		if fmt.Sprint(o.Annotations) != fmt.Sprint(th.Annotations) || fmt.Sprint(o.Platform) != fmt.Sprint(th.Platform) {
			t.Errorf("entry %d: ours %v %v, theirs %v %v", i, o.Annotations, o.Platform, th.Annotations, th.Platform)
		}
	}
	sociEntry := theirIndex.Manifests[1]
	ob, _ := ours.get(sociEntry.Digest)
	tb, _ := theirs.get(sociEntry.Digest)
	if !bytes.Equal(ob, tb) {
		t.Errorf("SOCI indexes differ:\nours   %s\ntheirs %s", ob, tb)
	}
	if ourRoot.Digest != theirRoot.Digest {
		ob, _ := ours.get(ourRoot.Digest)
		tb, _ := theirs.get(theirRoot.Digest)
		t.Errorf("image indexes differ:\nours   %s\ntheirs %s", ob, tb)
	}

	// Their parser reads our SOCI index and zTOCs; ours reads theirs.
	var their socipkg.Index
	ourSoci, err := ours.get(ourIndex.Manifests[1].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := socipkg.UnmarshalIndex(ourSoci, &their); err != nil {
		t.Fatal(err)
	}
	if their.ArtifactType != socipkg.SociIndexArtifactTypeV2 || len(their.Blobs) != 2 {
		t.Fatalf("soci reads our index as %+v", their)
	}
	for _, b := range their.Blobs {
		zb, _ := ours.get(b.Digest)
		if _, err := ztoc.Unmarshal(bytes.NewReader(zb)); err != nil {
			t.Errorf("soci reads our zTOC %s: %v", b.Digest, err)
		}
	}
	theirSoci, _ := theirs.get(theirIndex.Manifests[1].Digest)
	m, err := soci.DecodeIndexManifest(theirSoci)
	if err != nil {
		t.Fatal(err)
	}
	var man ocispec.Manifest
	mustJSON(t, theirs, theirIndex.Manifests[0].Digest, &man)
	if _, err := m.Match(man.Layers); err != nil || len(m.Ztocs) != 2 {
		t.Fatalf("our reading of theirs: %+v, %v", m, err)
	}
}

// TestSociPrefetchInterop checks that the prefetch artifacts convert
// writes for a plan of files are those soci's builder writes for the same
// files.
func TestSociPrefetchInterop(t *testing.T) {
	ctx := context.Background()
	src := sociTestImage(t)
	const span = 64 << 10
	files := []string{"http/server.go", "dnsclient.go", "http/httptest/server.go"}
	_, theirs := sociConvert(t, src, span, files)
	ps, err := prefetch.ParsePatterns(strings.Join(files, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	ours := &blobStore{blobs: make(map[digest.Digest][]byte)}
	if _, err := convert.Image(ctx, src, ours, convert.WithPrefetchPatterns(ps),
		convert.WithSOCI(convert.SOCISpanSize(span), convert.SOCIMinLayerSize(100<<10), convert.SOCIBuildTool(sociTool))); err != nil {
		t.Fatal(err)
	}
	find := func(s *blobStore) []byte {
		for _, b := range s.blobs {
			if bytes.HasPrefix(b, []byte(`{"version":"1.0","prefetch_spans"`)) {
				return b
			}
		}
		return nil
	}
	o, th := find(ours), find(theirs)
	if o == nil || !bytes.Equal(o, th) {
		t.Errorf("prefetch artifacts differ:\nours   %s\ntheirs %s", o, th)
	}
}

func mustJSON(t *testing.T, s *blobStore, d digest.Digest, v any) {
	t.Helper()
	b, err := s.get(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// goSrcTar returns a tar of GOROOT/src/dir, names relative to it.
func goSrcTar(t *testing.T, dir string) []byte {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	path, _ := corpus.TreeTar(t, filepath.Join(strings.TrimSpace(string(out)), "src", dir))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tarOfFiles(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	tw.Close()
	return buf.Bytes()
}

// TestSociConvertedOpens converts an image with soci-snapshotter's own
// Convert, with a prefetch artifact, and opens the result through
// image.Open: the indexed layers by their zTOCs, the small one fetched
// whole; every file of the merged file system is the source's, the
// indexed layers pass VerifyLayer, and their prefetch artifact plans the
// files soci was given.
func TestSociConvertedOpens(t *testing.T) {
	ctx := context.Background()
	src := sociTestImage(t)
	files := []string{"http/server.go", "dnsclient.go"}
	// A span size no other test converts with: soci's artifacts
	// database is one per process, and would take the zTOCs of another
	// test's conversion, of another store, for this one's.
	_, theirs := sociConvert(t, src, 128<<10, files)

	img, err := image.Open(ctx, theirs, image.WithFetchWhole(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := img.Err(); err != nil {
		t.Fatal(err)
	}
	for i, l := range img.Layers() {
		if indexed := i < 2; indexed != (l.Format == toc.FormatSOCI) || indexed == l.Whole {
			t.Errorf("layer %d: format %v, fetched whole %v", i, l.Format, l.Whole)
		}
	}
	root, err := img.FS()
	if err != nil {
		t.Fatal(err)
	}
	// The layers stacked: no whiteouts among them, upper files win.
	type want struct {
		typ  byte
		data []byte
		link string
	}
	tree := make(map[string]want)
	var m ocispec.Manifest
	mustJSON(t, theirs, img.ManifestDescriptor().Digest, &m)
	for _, l := range m.Layers {
		b, _ := theirs.get(l.Digest)
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			name := path.Clean("/" + h.Name)[1:]
			if name == "" {
				continue
			}
			w := want{typ: h.Typeflag, link: h.Linkname}
			switch h.Typeflag {
			case tar.TypeReg:
				w.data, _ = io.ReadAll(tr)
			case tar.TypeLink:
				w = tree[path.Clean("/" + h.Linkname)[1:]]
			}
			tree[name] = w
		}
	}
	checked := 0
	for name, w := range tree {
		switch w.typ {
		case tar.TypeReg:
			data, err := fs.ReadFile(root, name)
			if err != nil || !bytes.Equal(data, w.data) {
				t.Errorf("%s: %d bytes that differ from the %d of the layer, %v", name, len(data), len(w.data), err)
			}
			checked++
		case tar.TypeSymlink:
			if target, err := fs.ReadLink(root, name); err != nil || target != w.link {
				t.Errorf("%s links to %q, %v; want %q", name, target, err, w.link)
			}
		default:
			if _, err := root.Lstat(name); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d files checked", checked)
	}
	for i := range 2 {
		if err := img.VerifyLayer(ctx, i); err != nil {
			t.Error(err)
		}
	}

	plan, err := img.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	planned := map[string]bool{}
	for _, it := range plan.Items() {
		if it.Reason == image.ReasonSOCIPrefetch {
			planned[it.Path] = true
			if it.Layer != 1 {
				t.Errorf("%v: of layer %d", it, it.Layer)
			}
		}
	}
	for _, f := range files {
		if !planned[f] {
			t.Errorf("%s is not planned: %v", f, planned)
		}
	}
}
