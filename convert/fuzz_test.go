package convert

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzParse feeds untrusted manifests, indexes and configs to the
// parsers: they return an error or a value, never panic, and a config
// they accept can be rewritten with new DiffIDs.
func FuzzParse(f *testing.F) {
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("c"), Size: 1},
		Layers: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("l"), Size: 2}}}
	m.SchemaVersion = 2
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{{MediaType: m.MediaType, Digest: digest.FromString("m")}}}
	idx.SchemaVersion = 2
	img := ocispec.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("t")}}}
	for _, v := range []any{m, idx, img} {
		b, _ := json.Marshal(v)
		f.Add(b)
	}
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":null}`))
	f.Add([]byte(`{"rootfs":{"diff_ids":[]},"config":{"Entrypoint":["/x"]},"unknown":[1,2]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, _, err := parseHeader(b, ""); err == nil {
			switch k {
			case kindIndex:
				parseIndex(b, 16)
			case kindManifest:
				parseManifest(b, 16)
			}
		}
		for layers := range 2 {
			c, err := parseConfig(b, layers)
			if err != nil {
				continue
			}
			ids := make([]digest.Digest, layers)
			for i := range ids {
				ids[i] = digest.FromString("new")
			}
			out, err := c.withDiffIDs(ids)
			if err != nil {
				continue
			}
			again, err := parseConfig(out, layers)
			if err != nil {
				t.Fatalf("rewritten config does not parse: %v\n%s", err, out)
			}
			for i, d := range again.image.RootFS.DiffIDs {
				if d != ids[i] {
					t.Fatalf("DiffID %d is %s after rewriting", i, d)
				}
			}
		}
	})
}

// FuzzTarFS indexes tar streams of untrusted names and links (built
// from the input, so that the fuzzer explores names rather than tar
// checksums): the view is a valid fs.FS whatever the names, and reading
// it never panics.
func FuzzTarFS(f *testing.F) {
	f.Add("a/b\n../../c\n/a/b\na/h\na/b/\n.wh.x\nx/./y/../z", []byte{0, 2, 1, 3, 5})
	f.Fuzz(func(t *testing.T, names string, types []byte) {
		if len(types) == 0 {
			return
		}
		lines := strings.Split(names, "\n")
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for i, name := range lines {
			h := &tar.Header{Name: name, Linkname: lines[(i+1)%len(lines)], Mode: 0o644, Format: tar.FormatPAX}
			h.Typeflag = []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo}[int(types[i%len(types)])%5]
			if h.Typeflag == tar.TypeReg {
				h.Size = int64(len(name))
			}
			if tw.WriteHeader(h) != nil {
				return
			}
			if h.Typeflag == tar.TypeReg {
				tw.Write([]byte(name))
			}
		}
		tw.Close()
		b := buf.Bytes()
		var spool bytes.Buffer
		fsys, err := indexTar(bytes.NewReader(b), &spool, bytes.NewReader(b), &fileBudget{files: 1000, nameBytes: 1 << 20})
		if err != nil {
			return
		}
		if !bytes.Equal(spool.Bytes(), b) {
			t.Fatal("spool is not the input")
		}
		err = fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if _, err := fsys.Lstat(name); err != nil {
				return err
			}
			if d.Type().IsRegular() {
				_, err = fs.ReadFile(fsys, name)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
