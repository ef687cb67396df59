package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"

	limage "github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/internal/tooltest"
	"github.com/lazylayer/lazylayer/registry"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// entry is one tar entry of a source layer.
type entry struct {
	name string
	typ  byte   // tar.TypeDir, TypeReg, TypeSymlink or TypeLink
	data []byte // a regular file's content
	link string // a link's target
}

// sourceLayers are the layers of the image the tools convert: files from
// empty to several MiB, some compressible and some not, relative and
// absolute symbolic links, a hard link, and in the upper layers a
// whiteout, an opaque directory and a replaced file.
func foreignSourceLayers() [][]entry {
	dir := func(name string) entry { return entry{name: name, typ: tar.TypeDir} }
	reg := func(name string, data []byte) entry { return entry{name: name, typ: tar.TypeReg, data: data} }
	symlink := func(name, target string) entry { return entry{name: name, typ: tar.TypeSymlink, link: target} }
	hardlink := func(name, target string) entry { return entry{name: name, typ: tar.TypeLink, link: target} }
	rng := rand.New(rand.NewPCG(11, 12))
	// content is n bytes, the first random and the rest text, so that
	// the layers compress some but not all.
	content := func(n int, random float64) []byte {
		b := make([]byte, n)
		cut := int(float64(n) * random)
		for i := range cut {
			b[i] = byte(rng.Uint32())
		}
		words := []string{"lazy ", "layer ", "chunk ", "frame ", "index\n"}
		for i := cut; i < n; {
			i += copy(b[i:], words[rng.IntN(len(words))])
		}
		return b
	}
	base := []entry{
		dir("etc"), dir("usr"), dir("usr/bin"), dir("usr/lib"), dir("data"), dir("data/dir"),
		reg("etc/hostname", []byte("e2e\n")),
		reg("etc/empty", nil),
		reg("usr/bin/tool", content(1536<<10, 0.5)),
		hardlink("usr/bin/tool-hard", "usr/bin/tool"),
		symlink("usr/bin/alias", "tool"),
		symlink("etc/abs", "/usr/bin/tool"),
		reg("usr/lib/libbig.so", content(3<<20, 0.7)),
		reg("data/medium", content(64<<10, 1)),
		reg("data/gone", content(10<<10, 0)),
		reg("data/dir/old-a", content(5000, 0.2)),
		reg("data/dir/old-b", content(1, 1)),
	}
	upper := []entry{
		dir("etc"), dir("data"), dir("data/dir"), dir("data/many"),
		reg("etc/hostname", []byte("e2e-upper\n")),
		reg("data/.wh.gone", nil),
		reg("data/dir/.wh..wh..opq", nil),
		reg("data/dir/new", content(20<<10, 0.5)),
	}
	for i := range 40 {
		upper = append(upper, reg(fmt.Sprintf("data/many/f%02d", i), content(1+i*i*13, 0.5)))
	}
	top := []entry{
		dir("opt"), dir("opt/app"),
		reg("opt/app/big", content(2<<20, 1)),
		symlink("opt/app/lib", "../../usr/lib"),
	}
	return [][]entry{base, upper, top}
}

// mergedTree is what a runtime that stacks layers shows: whiteouts and
// opaque markers applied and gone, hard links as the files they link.
// An opaque marker must come before the entries of its directory that its
// layer adds.
func mergedTree(layers [][]entry) map[string]entry {
	tree := map[string]entry{}
	remove := func(name string, self bool) {
		for n := range tree {
			if (self && n == name) || strings.HasPrefix(n, name+"/") {
				delete(tree, n)
			}
		}
	}
	for _, l := range layers {
		for _, e := range l {
			parent, base := path.Split(e.name)
			switch {
			case base == ".wh..wh..opq":
				remove(strings.TrimSuffix(parent, "/"), false)
			case strings.HasPrefix(base, ".wh."):
				remove(parent+strings.TrimPrefix(base, ".wh."), true)
			case e.typ == tar.TypeLink:
				target := tree[e.link]
				target.name = e.name
				tree[e.name] = target
			default:
				tree[e.name] = e
			}
		}
	}
	return tree
}

// layerBlob is a tar of entries and its gzip compression.
func layerBlob(t *testing.T, entries []entry) (tarball, blob []byte) {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, e := range entries {
		hdr := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: 0o644, Size: int64(len(e.data)), Format: tar.FormatPAX}
		switch e.typ {
		case tar.TypeDir:
			hdr.Name, hdr.Mode = e.name+"/", 0o755
		case tar.TypeSymlink:
			hdr.Mode = 0o777
		case tar.TypeLink:
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(tb.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return tb.Bytes(), gz.Bytes()
}

// pushSource pushes an OCI image of layers, gzip-compressed as any
// builder writes them, to ref.
func pushForeignSource(t *testing.T, ref string, layers [][]entry) {
	t.Helper()
	ctx := t.Context()
	c, err := registry.New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	repo, err := c.Repository(ref)
	if err != nil {
		t.Fatal(err)
	}
	push := func(mt string, b []byte) ocispec.Descriptor {
		desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
		if err := repo.PushBlob(ctx, desc, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		return desc
	}
	config := ocispec.Image{
		Platform: ocispec.Platform{Architecture: "amd64", OS: "linux"},
		Config:   ocispec.ImageConfig{Cmd: []string{"/usr/bin/tool"}},
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	manifest := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
	for _, l := range layers {
		tarball, blob := layerBlob(t, l)
		config.RootFS.DiffIDs = append(config.RootFS.DiffIDs, digest.FromBytes(tarball))
		manifest.Layers = append(manifest.Layers, push(ocispec.MediaTypeImageLayerGzip, blob))
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	manifest.Config = push(ocispec.MediaTypeImageConfig, configJSON)
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(manifestJSON), Size: int64(len(manifestJSON))}
	if err := repo.PushManifest(ctx, desc, manifestJSON); err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(ctx, desc); err != nil {
		t.Fatal(err)
	}
}

// traffic counts the requests a registry client sends and the response
// body bytes it reads.
type traffic struct {
	mu       sync.Mutex
	requests int
	bytes    int64
	whole    []string // blobs asked for without a Range
}

func (tr *traffic) RoundTrip(req *http.Request) (*http.Response, error) {
	tr.mu.Lock()
	tr.requests++
	if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") && req.Header.Get("Range") == "" {
		tr.whole = append(tr.whole, path.Base(req.URL.Path))
	}
	tr.mu.Unlock()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &countedBody{resp.Body, tr}
	return resp, nil
}

// wholeBlobs returns the digests of the blobs asked for without a Range.
func (tr *traffic) wholeBlobs() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.whole)
}

// snapshot returns the requests and bytes so far.
func (tr *traffic) snapshot() (int, int64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.requests, tr.bytes
}

type countedBody struct {
	io.ReadCloser
	tr *traffic
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.tr.mu.Lock()
	b.tr.bytes += int64(n)
	b.tr.mu.Unlock()
	return n, err
}

// smallRead bounds what reading a file of a few bytes may fetch: its
// chunk, in a frame or gzip member of its own or shared with a few small
// files. A SOCI layer's file costs its span instead.
const smallRead = 64 << 10

// checkOpensLazily opens the image at ref, which a tool wrote from an
// image of layers, through image.Open over a registry client of its own,
// and checks that:
//
//   - every layer is seekable, of format want, and opening the image
//     fetched index bytes only: no layer blob whole, and a small part of
//     the layer blobs' bytes;
//   - walking the merged file system costs no request, reading the few
//     bytes of etc/hostname costs at most small bytes, and the file
//     system holds exactly the files, directories and links of the
//     layers stacked, with their contents;
//   - every layer passes VerifyLayer, the check "lazylayer verify" makes.
func checkOpensLazily(t *testing.T, ref string, layers [][]entry, want toc.Format, small int64) {
	t.Helper()
	ctx := t.Context()
	tr := &traffic{}
	c, err := registry.New(registry.WithTransport(tr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src, err := limage.ParseReference(ref, c)
	if err != nil {
		t.Fatal(err)
	}
	img, err := limage.Open(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := img.Err(); err != nil {
		t.Fatalf("layers that did not open: %v", err)
	}
	openRequests, openBytes := tr.snapshot()
	var blobBytes int64
	for i, l := range img.Layers() {
		blobBytes += l.Descriptor.Size
		if l.Format != want || l.Whole {
			t.Errorf("layer %d (%s, %s): format %v, fetched whole %v; want %v, lazily", i, l.Descriptor.MediaType, l.Descriptor.Digest, l.Format, l.Whole, want)
		}
	}
	t.Logf("%s: open took %d requests and %d bytes, of layer blobs of %d bytes", ref, openRequests, openBytes, blobBytes)
	if len(img.Layers()) != len(layers) {
		t.Fatalf("%d layers, want %d", len(img.Layers()), len(layers))
	}
	if openBytes*10 > blobBytes {
		t.Errorf("opening fetched %d bytes, over a tenth of the layer blobs' %d: more than their indexes", openBytes, blobBytes)
	}
	checkNoneWhole := func(when string) {
		for _, l := range img.Layers() {
			if slices.Contains(tr.wholeBlobs(), l.Descriptor.Digest.String()) {
				t.Errorf("%s fetched layer %s whole", when, l.Descriptor.Digest)
			}
		}
	}
	checkNoneWhole("opening")

	root, err := img.FS()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]fs.DirEntry{}
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || name == "." {
			return err
		}
		got[name] = d
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := tr.snapshot(); n != openRequests {
		t.Errorf("walking the file system made %d requests, want none: the index says it all", n-openRequests)
	}
	// A small file costs its chunk.
	if data, err := fs.ReadFile(root, "etc/hostname"); err != nil || string(data) != "e2e-upper\n" {
		t.Errorf("etc/hostname: %q, %v", data, err)
	}
	if _, n := tr.snapshot(); n-openBytes > small {
		t.Errorf("reading the 10 bytes of etc/hostname fetched %d bytes, more than %d", n-openBytes, small)
	}
	wantTree := mergedTree(layers)
	for _, name := range slices.Sorted(maps.Keys(got)) {
		d, e := got[name], wantTree[name]
		switch {
		case e.name == "":
			t.Errorf("%s (%v) is in the image, not in the layers stacked", name, d.Type())
		case e.typ == tar.TypeDir && !d.IsDir(), e.typ == tar.TypeReg && !d.Type().IsRegular(), e.typ == tar.TypeSymlink && d.Type() != fs.ModeSymlink:
			t.Errorf("%s is of type %v, want tar type %q", name, d.Type(), e.typ)
		case e.typ == tar.TypeReg:
			data, err := fs.ReadFile(root, name)
			if err != nil || !bytes.Equal(data, e.data) {
				t.Errorf("%s: %d bytes that differ from the %d written, %v", name, len(data), len(e.data), err)
			}
		case e.typ == tar.TypeSymlink:
			if target, err := fs.ReadLink(root, name); err != nil || target != e.link {
				t.Errorf("%s links to %q, %v; want %q", name, target, err, e.link)
			}
		}
	}
	for name := range wantTree {
		if got[name] == nil {
			t.Errorf("%s is missing from the image", name)
		}
	}
	checkNoneWhole("reading every file")

	for i := range img.Layers() {
		if err := img.VerifyLayer(ctx, i); err != nil {
			t.Errorf("verify: %v", err)
		}
	}
}

// checkCommand runs "lazylayer verify", "ls" and "cat" on ref and checks
// what they say.
func checkCommand(t *testing.T, bin *lazylayer, ref string, layers [][]entry, want toc.Format) {
	t.Helper()
	out := bin.stdout(t, "verify", ref)
	t.Logf("lazylayer verify %s:\n%s", ref, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(layers) {
		t.Errorf("lazylayer verify printed %d lines for %d layers:\n%s", len(lines), len(layers), out)
	}
	for _, line := range lines {
		if !strings.HasSuffix(line, ": ok") || !strings.Contains(line, want.String()) {
			t.Errorf("lazylayer verify: %q, want a %v layer that is ok", line, want)
		}
	}

	tree := mergedTree(layers)
	for _, dir := range []string{"data", "data/many"} {
		out = bin.stdout(t, "ls", ref, dir)
		for name := range tree {
			if parent, base := path.Split(name); parent == dir+"/" && !strings.Contains(out, base) {
				t.Errorf("lazylayer ls %s lacks %s:\n%s", dir, base, out)
			}
		}
		if strings.Contains(out, "gone") || strings.Contains(out, ".wh.") {
			t.Errorf("lazylayer ls %s shows a whiteout or what it deletes:\n%s", dir, out)
		}
	}
	for _, name := range []string{"etc/hostname", "usr/bin/tool", "data/dir/new"} {
		if out := bin.stdout(t, "cat", ref, name); out != string(tree[name].data) {
			t.Errorf("lazylayer cat %s: %d bytes that differ from the %d written", name, len(out), len(tree[name].data))
		}
	}
}

// TestSkopeoZstdChunkedOpensLazily converts a gzip image with
// "skopeo copy --dest-compress-format zstd:chunked" (skopeo 1.9, which
// writes zstd:chunked with containers/storage's compressor) and opens the
// result lazily.
func TestSkopeoZstdChunkedOpensLazily(t *testing.T) {
	skopeo := tooltest.Look(t, "skopeo", "skopeo")
	bin := buildLazylayer(t)
	box := tooltest.NewSandbox(t)
	reg := startRegistry(t)
	layers := foreignSourceLayers()
	pushForeignSource(t, reg.Host()+"/e2e/src:v1", layers)

	dst := reg.Host() + "/e2e/skopeo:v1"
	box.Run(t, nil, skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
		"--dest-compress-format", "zstd:chunked", "docker://"+reg.Host()+"/e2e/src:v1", "docker://"+dst)
	checkOpensLazily(t, dst, layers, toc.FormatZstdChunked, smallRead)
	checkCommand(t, bin, dst, layers, toc.FormatZstdChunked)
}

// TestPodmanZstdChunkedOpensLazily pulls a gzip image with podman 4.3 and
// pushes it with "podman push --compression-format zstd:chunked", then
// opens the result lazily.
func TestPodmanZstdChunkedOpensLazily(t *testing.T) {
	pm := newPodman(t)
	bin := buildLazylayer(t)
	// To the registry it pulled from, podman 4.3 pushes the gzip blobs
	// it pulled as they are, whatever --compression-format says.
	from, to := startRegistry(t), startRegistry(t)
	layers := foreignSourceLayers()
	src, dst := from.Host()+"/e2e/src:v1", to.Host()+"/e2e/podman:v1"
	pushForeignSource(t, src, layers)

	pm.run(t, "pull", "--quiet", "--tls-verify=false", src)
	pm.run(t, "push", "--quiet", "--tls-verify=false", "--compression-format", "zstd:chunked", src, "docker://"+dst)
	checkOpensLazily(t, dst, layers, toc.FormatZstdChunked, smallRead)
	checkCommand(t, bin, dst, layers, toc.FormatZstdChunked)
}

// TestCtrRemoteConvertOpensLazily pulls a gzip image into a containerd of
// the test's own, converts it with "ctr-remote image convert --oci" of
// stargz-snapshotter 0.12 to eStargz and to zstd:chunked, pushes each
// with "ctr-remote image push", and opens them lazily.
func TestCtrRemoteConvertOpensLazily(t *testing.T) {
	ctrd := startContainerdFor(t, tooltest.Look(t, "ctr-remote", "stargz-snapshotter"), true)
	bin := buildLazylayer(t)
	reg := startRegistry(t)
	layers := foreignSourceLayers()
	src := reg.Host() + "/e2e/src:v1"
	pushForeignSource(t, src, layers)
	if _, err := ctrd.run(t, nil, "images", "pull", "--plain-http", src); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		flag string
		want toc.Format
	}{
		{"--estargz", toc.FormatEStargz},
		{"--zstdchunked", toc.FormatZstdChunked},
	} {
		t.Run(tc.want.String(), func(t *testing.T) {
			dst := reg.Host() + "/e2e/ctr-remote-" + strings.TrimPrefix(tc.flag, "--") + ":v1"
			if _, err := ctrd.run(t, nil, "images", "convert", tc.flag, "--oci", src, dst); err != nil {
				t.Fatal(err)
			}
			if _, err := ctrd.run(t, nil, "images", "push", "--plain-http", dst); err != nil {
				t.Fatal(err)
			}
			checkOpensLazily(t, dst, layers, tc.want, smallRead)
			checkCommand(t, bin, dst, layers, tc.want)
		})
	}
}
