package convert

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// FuzzParse (seeds in testdata/fuzz) feeds untrusted configs to
// parseConfig and rewrites what it accepts with new DiffIDs: the rewrite
// parses again, with the new DiffIDs, whatever else the config holds.
// The parsing of manifests, indexes and configs it shares with package
// image is fuzzed by internal/ocidoc's FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
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
			var before, after map[string]any
			json.Unmarshal(b, &before)
			json.Unmarshal(out, &after)
			delete(before, "rootfs")
			delete(after, "rootfs")
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("rewriting changed fields other than rootfs:\n%s\n%s", b, out)
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
