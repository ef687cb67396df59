package soci

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestWriteSeeds writes the fuzz seed corpus when SOCI_WRITE_SEEDS is set.
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("SOCI_WRITE_SEEDS") == "" {
		t.Skip("set SOCI_WRITE_SEEDS to write testdata/fuzz")
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	mt := time.Unix(1700000000, 5).UTC()
	tw.WriteHeader(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt})
	tw.WriteHeader(&tar.Header{Name: "d/f", Typeflag: tar.TypeReg, Size: 3, Mode: 0o644, ModTime: mt, PAXRecords: map[string]string{"SCHILY.xattr.user.a": "b"}, Format: tar.FormatPAX})
	tw.Write([]byte("abc"))
	tw.WriteHeader(&tar.Header{Name: "d/l", Typeflag: tar.TypeSymlink, Linkname: "f", ModTime: mt})
	tw.Close()
	write := func(fuzz, name string, b []byte) {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	z := index(t, tb.Bytes(), Uncompressed)
	enc, _ := Encode(z)
	write("FuzzDecodeZtoc", "uncompressed", enc)
	z = index(t, gzipMembers(t, 6, tb.Bytes()), Gzip)
	cp, _ := DecodeCheckpoints(z.Checkpoints)
	cp.Legacy = true
	z.Checkpoints = cp.Encode()
	enc, _ = Encode(z)
	write("FuzzDecodeZtoc", "gzip-legacy", enc)
	write("FuzzDecodeCheckpoints", "legacy-one", cp.Encode())
	two := &Checkpoints{SpanSize: 100, Legacy: true, Points: []Checkpoint{{In: 10}, {In: 40, Out: 300, Bits: 5, Window: []byte("window")}}}
	write("FuzzDecodeCheckpoints", "legacy-two", two.Encode())
	_, idx := testIndex(t)
	write("FuzzDecodeIndexManifest", "v2", idx)
	write("FuzzDecodeIndexManifest", "v1", edit(t, func(w map[string]any) {
		w["config"].(map[string]any)["mediaType"] = MediaTypeIndexV1
		w["subject"] = map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digestOf("image"), "size": 10}
	}))
	pf, _ := EncodePrefetch([]PrefetchSpan{{Start: 0, End: 3}, {Start: 5, End: 9, Priority: 1}})
	write("FuzzDecodePrefetch", "two", pf)
}

func digestOf(s string) string { return digest.FromString(s).String() }
