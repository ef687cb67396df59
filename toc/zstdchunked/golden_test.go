package zstdchunked

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/toc/estargz"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	splittar "github.com/vbatts/tar-split/archive/tar"
)

// The golden zstd:chunked blobs in testdata were written by a scratch
// program (TZ=UTC) from the tar in testdata/zstdchunked.tar:
//   - zstdchunked-storage.blob: go.podman.io/storage v1.65.0
//     pkg/chunked/compressor.ZstdCompressor, default level;
//   - zstdchunked-estargz.blob: stargz-snapshotter estargz v0.19.1 Build
//     with zstdchunked.Compressor (level 3), chunk size 16.
// The *.annotations.json files hold the annotations each writer produced.

type zstdChunkedGolden struct {
	blob, tar   []byte
	annotations map[string]string
}

func loadZstdChunkedGolden(t *testing.T, name string) zstdChunkedGolden {
	t.Helper()
	var g zstdChunkedGolden
	var err error
	if g.blob, err = os.ReadFile("testdata/" + name + ".blob"); err != nil {
		t.Fatal(err)
	}
	if g.tar, err = os.ReadFile("testdata/zstdchunked.tar"); err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile("testdata/" + name + ".annotations.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(a, &g.annotations); err != nil {
		t.Fatal(err)
	}
	return g
}

// tarContents maps each regular file of a tar to its contents, by cleaned
// name.
func tarContents(t *testing.T, raw []byte) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		name, err := tocjson.CleanName(hdr.Name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
}

// verifyChunks decompresses every chunk's frame from blob and checks it
// against the chunk and file digests and the expected contents.
func verifyChunks(t *testing.T, blob []byte, index *toc.TOC, files map[string][]byte) {
	t.Helper()
	zr, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, e := range index.Entries {
		if e.Type != toc.TypeReg || e.Name == toc.PrefetchLandmark || e.Name == toc.NoPrefetchLandmark {
			continue
		}
		var content []byte
		for i, c := range e.Chunks {
			frame, err := zr.DecodeAll(blob[c.FrameOffset:c.FrameEnd], nil)
			if err != nil {
				t.Fatalf("%s: chunk %d: frame [%d,%d): %v", e.Name, i, c.FrameOffset, c.FrameEnd, err)
			}
			if int64(len(frame)) < c.InnerOffset+c.Size {
				t.Fatalf("%s: chunk %d: frame holds %d bytes, want %d at %d", e.Name, i, len(frame), c.Size, c.InnerOffset)
			}
			data := frame[c.InnerOffset : c.InnerOffset+c.Size]
			if c.Digest == "" || digest.FromBytes(data) != c.Digest {
				t.Fatalf("%s: chunk %d: digest %s, want %s", e.Name, i, digest.FromBytes(data), c.Digest)
			}
			if c.Zeros && bytes.Count(data, []byte{0}) != len(data) {
				t.Fatalf("%s: chunk %d: zeros chunk holds non-zero bytes", e.Name, i)
			}
			content = append(content, data...)
		}
		if !bytes.Equal(content, files[e.Name]) {
			t.Fatalf("%s: chunks hold %q, want %q", e.Name, content, files[e.Name])
		}
		if e.Digest != "" && digest.FromBytes(content) != e.Digest {
			t.Fatalf("%s: file digest mismatch", e.Name)
		}
	}
}

// decodeGoldenTOC reads footer, annotations and TOC of a golden blob the
// way a reader would, checking that they agree.
func decodeGoldenTOC(t *testing.T, g zstdChunkedGolden) (*toc.TOC, digest.Digest, toc.Footer, []byte) {
	t.Helper()
	f, err := ParseFooter(g.blob[len(g.blob)-toc.MaxFooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckFooter(f, int64(len(g.blob))); err != nil {
		t.Fatal(err)
	}
	wantDigest, af, err := ParseAnnotations(g.annotations)
	if err != nil {
		t.Fatal(err)
	}
	af.Size = f.Size
	if af != f {
		t.Fatalf("annotations say %+v, footer says %+v", af, f)
	}
	compressed, err := SkippableFramePayload(g.blob, 0, f.TOCOffset, f.TOCLength)
	if err != nil {
		t.Fatal(err)
	}
	index, tarSplitDigest, err := Decode(compressed, f)
	if err != nil {
		t.Fatal(err)
	}
	if index.Digest != wantDigest {
		t.Fatalf("TOC digest %s, annotation pins %s", index.Digest, wantDigest)
	}
	return index, tarSplitDigest, f, compressed
}

func TestZstdChunkedGoldenStorage(t *testing.T) {
	g := loadZstdChunkedGolden(t, "zstdchunked-storage")
	index, tarSplitDigest, f, compressed := decodeGoldenTOC(t, g)
	if f.Size != FooterSize || f.TarSplitOffset == 0 || tarSplitDigest == "" {
		t.Fatalf("footer %+v, tar-split digest %q: want a 72-byte footer and a tar-split", f, tarSplitDigest)
	}

	// The footer and annotations we would write are the reference's.
	footer, err := Footer(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(footer, g.blob[len(g.blob)-FooterSize:]) {
		t.Fatalf("footer\n got %x\nwant %x", footer, g.blob[len(g.blob)-FooterSize:])
	}
	// Ours are the reference's, plus the first spellings of the manifest
	// keys and the tar-split checksum, for older readers.
	a := Annotations(index.Digest, tarSplitDigest, f)
	want := maps.Clone(g.annotations)
	want[LegacyAnnotationManifestChecksum] = want[AnnotationManifestChecksum]
	want[LegacyAnnotationManifestPosition] = want[AnnotationManifestPosition]
	want[AnnotationTarSplitChecksum] = tarSplitDigest.String()
	if !maps.Equal(a, want) {
		t.Fatalf("annotations\n got %v\nwant %v", a, want)
	}

	// A footer that does not say where the tar-split is (the 48-byte
	// one) leaves it where containers/storage writes it.
	bare := f
	bare.TarSplitOffset, bare.TarSplitLength, bare.TarSplitUncompressedLength = 0, 0, 0
	if lf := LocateTarSplit(bare, int64(len(g.blob))); lf.TarSplitOffset != f.TarSplitOffset || lf.TarSplitLength != f.TarSplitLength {
		t.Fatalf("LocateTarSplit = %+v, the footer says %+v", lf, f)
	}

	files := tarContents(t, g.tar)
	verifyChunks(t, g.blob, index, files)

	byName := make(map[string]*toc.Entry)
	for _, e := range index.Entries {
		byName[e.Name] = e
	}
	if e := byName["."]; e == nil || e.Type != toc.TypeDir {
		t.Fatalf("root entry %+v", e)
	}
	holey := byName["bin/holey"]
	if len(holey.Chunks) != 3 || holey.Chunks[0].Zeros || !holey.Chunks[1].Zeros || holey.Chunks[2].Zeros {
		t.Fatalf("bin/holey chunks %+v, want data, zeros, data", holey.Chunks)
	}
	tool := byName["bin/tool"]
	if want := time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC); !tool.ModTime.Equal(want) || tool.ModTime.Location() != time.UTC {
		t.Fatalf("bin/tool modtime %v, want %v", tool.ModTime, want)
	}
	if tool.AccessTime.IsZero() || tool.ChangeTime.IsZero() || tool.Xattrs["user.note"] != "hi" {
		t.Fatalf("bin/tool: times or xattrs lost: %+v", tool)
	}
	if len(tool.Chunks) != 1 || tool.Chunks[0].Digest != tool.Digest {
		t.Fatalf("bin/tool: single chunk should carry the file digest: %+v", tool.Chunks)
	}
	if e := byName["bin/tool2"]; e.Type != toc.TypeHardlink || e.LinkName != "bin/tool" {
		t.Fatalf("hardlink %+v", e)
	}

	// The tar-split checks against the TOC and replays the exact tar.
	tsPayload, err := SkippableFramePayload(g.blob, 0, f.TarSplitOffset, f.TarSplitLength)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewTarSplitReader(tsPayload, tarSplitDigest)
	if err != nil {
		t.Fatal(err)
	}
	size, err := CheckTarSplit(r, index)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(g.tar)) {
		t.Fatalf("tar-split describes %d bytes, tar has %d", size, len(g.tar))
	}
	var rebuilt bytes.Buffer
	r, err = NewTarSplitReader(tsPayload, tarSplitDigest)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n, err := WriteTarFromTarSplit(&rebuilt, r, func(name string, size int64) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(files[name])), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(g.tar)) || !bytes.Equal(rebuilt.Bytes(), g.tar) {
		t.Fatalf("rebuilt tar (%d bytes) differs from the original (%d bytes)", n, len(g.tar))
	}

	// With the tar's own names, the TOC encodes to the reference's bytes,
	// and compresses to them at the reference's level.
	wantJSON, err := DecompressTOC(compressed, f.TOCUncompressedLength)
	if err != nil {
		t.Fatal(err)
	}
	withTarNames(t, index, g.tar)
	js, err := Marshal(index, tarSplitDigest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(js, wantJSON) {
		t.Fatalf("TOC JSON\n got %s\nwant %s", js, wantJSON)
	}
	z, err := CompressFrame(js, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(z, compressed) {
		t.Errorf("compressed TOC differs from the reference's (%d vs %d bytes)", len(z), len(compressed))
	}

	// Re-packing the tar-split records yields the reference's stream.
	var repacked bytes.Buffer
	w, err := NewTarSplitWriter(&repacked, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := NewTarSplitReader(tsPayload, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	for {
		rec, err := r2.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if c, u := w.Size(); c != f.TarSplitLength || u != f.TarSplitUncompressedLength || w.Digest() != tarSplitDigest {
		t.Fatalf("repacked tar-split: %d/%d bytes, digest %s; want %d/%d, %s", c, u, w.Digest(), f.TarSplitLength, f.TarSplitUncompressedLength, tarSplitDigest)
	}
}

// withTarNames replaces the TOC's cleaned names by the names the tar
// spells, as a writer producing a layer passes them.
func withTarNames(t *testing.T, index *toc.TOC, raw []byte) {
	t.Helper()
	tr := splittar.NewReader(bytes.NewReader(raw))
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		index.Entries[i].Name = hdr.Name
		if hdr.Typeflag == splittar.TypeLink {
			index.Entries[i].LinkName = hdr.Linkname
		}
	}
}

func TestZstdChunkedGoldenEStargz(t *testing.T) {
	g := loadZstdChunkedGolden(t, "zstdchunked-estargz")
	index, tarSplitDigest, f, compressed := decodeGoldenTOC(t, g)
	if f.Size != LegacyFooterSize || tarSplitDigest != "" {
		t.Fatalf("footer %+v, tar-split digest %q: want the 48-byte footer and no tar-split", f, tarSplitDigest)
	}
	js, err := DecompressTOC(compressed, f.TOCUncompressedLength)
	if err != nil {
		t.Fatal(err)
	}
	if d := digest.FromBytes(js).String(); d != g.annotations[estargz.AnnotationTOCDigest] {
		t.Fatalf("TOC JSON digest %s, estargz pins %s", d, g.annotations[estargz.AnnotationTOCDigest])
	}
	if !index.NoPrefetch {
		t.Fatal("the .no.prefetch.landmark was not noticed")
	}
	// The 48-byte footer we write is the reference's, byte for byte.
	footer, err := Footer(f)
	if err != nil {
		t.Fatal(err)
	}
	if tail := g.blob[len(g.blob)-LegacyFooterSize:]; !bytes.Equal(footer, tail) {
		t.Fatalf("footer\n got %x\nwant %x", footer, tail)
	}
	if lf := LocateTarSplit(f, int64(len(g.blob))); lf != f {
		t.Fatalf("found a tar-split in a blob without one: %+v", lf)
	}
	verifyChunks(t, g.blob, index, tarContents(t, g.tar))
}

func TestZstdChunkedTarSplitErrors(t *testing.T) {
	g := loadZstdChunkedGolden(t, "zstdchunked-storage")
	_, tarSplitDigest, f, _ := decodeGoldenTOC(t, g)
	tsPayload, err := SkippableFramePayload(g.blob, 0, f.TarSplitOffset, f.TarSplitLength)
	if err != nil {
		t.Fatal(err)
	}
	check := func(mutate func(*toc.TOC), opts ...TarSplitOption) error {
		index, _, _, _ := decodeGoldenTOC(t, g)
		mutate(index)
		r, err := NewTarSplitReader(tsPayload, tarSplitDigest, opts...)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = CheckTarSplit(r, index)
		return err
	}
	find := func(index *toc.TOC, name string) *toc.Entry {
		for _, e := range index.Entries {
			if e.Name == name {
				return e
			}
		}
		t.Fatalf("no entry %q", name)
		return nil
	}
	for _, tc := range []struct {
		name   string
		mutate func(*toc.TOC)
	}{
		{"mode", func(index *toc.TOC) { find(index, "etc/hosts").Mode = 0o666 }},
		{"uid", func(index *toc.TOC) { find(index, "bin/tool").UID = 0 }},
		{"size", func(index *toc.TOC) { find(index, "bin/tool").Size++ }},
		{"type", func(index *toc.TOC) { find(index, "run/fifo").Type = toc.TypeChar }},
		{"modtime", func(index *toc.TOC) { find(index, "bin/tool").ModTime = time.Unix(1, 0) }},
		{"xattr", func(index *toc.TOC) { find(index, "bin/tool").Xattrs["user.note"] = "ho" }},
		{"link", func(index *toc.TOC) { find(index, "bin/sh").LinkName = "/etc/passwd" }},
		{"device", func(index *toc.TOC) { find(index, "dev/null").DevMinor = 5 }},
		{"name", func(index *toc.TOC) { find(index, "etc/empty").Name = "etc/other" }},
		{"extra entry", func(index *toc.TOC) { index.Entries = append(index.Entries, &toc.Entry{Name: "x", Type: toc.TypeDir}) }},
		{"missing entry", func(index *toc.TOC) { index.Entries = index.Entries[:len(index.Entries)-1] }},
		{"order", func(index *toc.TOC) { index.Entries[1], index.Entries[2] = index.Entries[2], index.Entries[1] }},
	} {
		if err := check(tc.mutate); !errors.Is(err, ErrTarSplitMismatch) {
			t.Errorf("%s: err = %v, want ErrTarSplitMismatch", tc.name, err)
		}
	}
	if err := check(func(*toc.TOC) {}, WithMaxTarSplitSize(1000)); !errors.Is(err, ErrTarSplitTooLarge) {
		t.Errorf("small limit: err = %v, want ErrTarSplitTooLarge", err)
	}
	if _, err := NewTarSplitReader(tsPayload[1:], tarSplitDigest); !errors.Is(err, ErrInvalidTarSplit) {
		t.Errorf("wrong digest: err = %v, want ErrInvalidTarSplit", err)
	}

	// Replaying with contents other than the recorded ones fails.
	r, err := NewTarSplitReader(tsPayload, tarSplitDigest)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = WriteTarFromTarSplit(io.Discard, r, func(name string, size int64) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(bytes.Repeat([]byte{'?'}, int(size)))), nil
	})
	if !errors.Is(err, ErrTarSplitMismatch) {
		t.Errorf("wrong contents: err = %v, want ErrTarSplitMismatch", err)
	}
}
