package toc

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
		name, err := cleanName(hdr.Name)
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
func verifyChunks(t *testing.T, blob []byte, toc *TOC, files map[string][]byte) {
	t.Helper()
	zr, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, e := range toc.Entries {
		if e.Type != TypeReg || e.Name == PrefetchLandmark || e.Name == NoPrefetchLandmark {
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
func decodeGoldenTOC(t *testing.T, g zstdChunkedGolden) (*TOC, digest.Digest, Footer, []byte) {
	t.Helper()
	f, err := ParseFooter(g.blob[len(g.blob)-MaxFooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckZstdChunkedFooter(f, int64(len(g.blob))); err != nil {
		t.Fatal(err)
	}
	wantDigest, af, err := ParseZstdChunkedAnnotations(g.annotations)
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
	toc, tarSplitDigest, err := DecodeZstdChunked(compressed, f)
	if err != nil {
		t.Fatal(err)
	}
	if toc.Digest != wantDigest {
		t.Fatalf("TOC digest %s, annotation pins %s", toc.Digest, wantDigest)
	}
	return toc, tarSplitDigest, f, compressed
}

func TestZstdChunkedGoldenStorage(t *testing.T) {
	g := loadZstdChunkedGolden(t, "zstdchunked-storage")
	toc, tarSplitDigest, f, compressed := decodeGoldenTOC(t, g)
	if f.Size != ZstdChunkedFooterSize || f.TarSplitOffset == 0 || tarSplitDigest == "" {
		t.Fatalf("footer %+v, tar-split digest %q: want a 72-byte footer and a tar-split", f, tarSplitDigest)
	}

	// The footer and annotations we would write are the reference's.
	footer, err := ZstdChunkedFooter(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(footer, g.blob[len(g.blob)-ZstdChunkedFooterSize:]) {
		t.Fatalf("footer\n got %x\nwant %x", footer, g.blob[len(g.blob)-ZstdChunkedFooterSize:])
	}
	// Ours are the reference's, plus the first spellings of the manifest
	// keys and the tar-split checksum, for older readers.
	a := ZstdChunkedAnnotations(toc.Digest, tarSplitDigest, f)
	want := maps.Clone(g.annotations)
	want[LegacyAnnotationZstdChunkedManifestChecksum] = want[AnnotationZstdChunkedManifestChecksum]
	want[LegacyAnnotationZstdChunkedManifestPosition] = want[AnnotationZstdChunkedManifestPosition]
	want[AnnotationZstdChunkedTarSplitChecksum] = tarSplitDigest.String()
	if !maps.Equal(a, want) {
		t.Fatalf("annotations\n got %v\nwant %v", a, want)
	}

	// A footer that does not say where the tar-split is (the 48-byte
	// one) leaves it where containers/storage writes it.
	bare := f
	bare.TarSplitOffset, bare.TarSplitLength, bare.TarSplitUncompressedLength = 0, 0, 0
	if lf := LocateZstdChunkedTarSplit(bare, int64(len(g.blob))); lf.TarSplitOffset != f.TarSplitOffset || lf.TarSplitLength != f.TarSplitLength {
		t.Fatalf("LocateZstdChunkedTarSplit = %+v, the footer says %+v", lf, f)
	}

	files := tarContents(t, g.tar)
	verifyChunks(t, g.blob, toc, files)

	byName := make(map[string]*Entry)
	for _, e := range toc.Entries {
		byName[e.Name] = e
	}
	if e := byName["."]; e == nil || e.Type != TypeDir {
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
	if e := byName["bin/tool2"]; e.Type != TypeHardlink || e.LinkName != "bin/tool" {
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
	size, err := CheckTarSplit(r, toc)
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
	wantJSON, err := DecompressZstdChunkedTOC(compressed, f.TOCUncompressedLength)
	if err != nil {
		t.Fatal(err)
	}
	withTarNames(t, toc, g.tar)
	js, err := MarshalZstdChunked(toc, tarSplitDigest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(js, wantJSON) {
		t.Fatalf("TOC JSON\n got %s\nwant %s", js, wantJSON)
	}
	z, err := CompressZstd(js, 10)
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
func withTarNames(t *testing.T, toc *TOC, raw []byte) {
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
		toc.Entries[i].Name = hdr.Name
		if hdr.Typeflag == splittar.TypeLink {
			toc.Entries[i].LinkName = hdr.Linkname
		}
	}
}

func TestZstdChunkedGoldenEStargz(t *testing.T) {
	g := loadZstdChunkedGolden(t, "zstdchunked-estargz")
	toc, tarSplitDigest, f, compressed := decodeGoldenTOC(t, g)
	if f.Size != LegacyZstdChunkedFooterSize || tarSplitDigest != "" {
		t.Fatalf("footer %+v, tar-split digest %q: want the 48-byte footer and no tar-split", f, tarSplitDigest)
	}
	js, err := DecompressZstdChunkedTOC(compressed, f.TOCUncompressedLength)
	if err != nil {
		t.Fatal(err)
	}
	if d := digest.FromBytes(js).String(); d != g.annotations[AnnotationEStargzTOCDigest] {
		t.Fatalf("TOC JSON digest %s, estargz pins %s", d, g.annotations[AnnotationEStargzTOCDigest])
	}
	if !toc.NoPrefetch {
		t.Fatal("the .no.prefetch.landmark was not noticed")
	}
	// The 48-byte footer we write is the reference's, byte for byte.
	footer, err := ZstdChunkedFooter(f)
	if err != nil {
		t.Fatal(err)
	}
	if tail := g.blob[len(g.blob)-LegacyZstdChunkedFooterSize:]; !bytes.Equal(footer, tail) {
		t.Fatalf("footer\n got %x\nwant %x", footer, tail)
	}
	if lf := LocateZstdChunkedTarSplit(f, int64(len(g.blob))); lf != f {
		t.Fatalf("found a tar-split in a blob without one: %+v", lf)
	}
	verifyChunks(t, g.blob, toc, tarContents(t, g.tar))
}

func TestZstdChunkedTarSplitErrors(t *testing.T) {
	g := loadZstdChunkedGolden(t, "zstdchunked-storage")
	_, tarSplitDigest, f, _ := decodeGoldenTOC(t, g)
	tsPayload, err := SkippableFramePayload(g.blob, 0, f.TarSplitOffset, f.TarSplitLength)
	if err != nil {
		t.Fatal(err)
	}
	check := func(mutate func(*TOC), opts ...TarSplitOption) error {
		toc, _, _, _ := decodeGoldenTOC(t, g)
		mutate(toc)
		r, err := NewTarSplitReader(tsPayload, tarSplitDigest, opts...)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = CheckTarSplit(r, toc)
		return err
	}
	find := func(toc *TOC, name string) *Entry {
		for _, e := range toc.Entries {
			if e.Name == name {
				return e
			}
		}
		t.Fatalf("no entry %q", name)
		return nil
	}
	for _, tc := range []struct {
		name   string
		mutate func(*TOC)
	}{
		{"mode", func(toc *TOC) { find(toc, "etc/hosts").Mode = 0o666 }},
		{"uid", func(toc *TOC) { find(toc, "bin/tool").UID = 0 }},
		{"size", func(toc *TOC) { find(toc, "bin/tool").Size++ }},
		{"type", func(toc *TOC) { find(toc, "run/fifo").Type = TypeChar }},
		{"modtime", func(toc *TOC) { find(toc, "bin/tool").ModTime = time.Unix(1, 0) }},
		{"xattr", func(toc *TOC) { find(toc, "bin/tool").Xattrs["user.note"] = "ho" }},
		{"link", func(toc *TOC) { find(toc, "bin/sh").LinkName = "/etc/passwd" }},
		{"device", func(toc *TOC) { find(toc, "dev/null").DevMinor = 5 }},
		{"name", func(toc *TOC) { find(toc, "etc/empty").Name = "etc/other" }},
		{"extra entry", func(toc *TOC) { toc.Entries = append(toc.Entries, &Entry{Name: "x", Type: TypeDir}) }},
		{"missing entry", func(toc *TOC) { toc.Entries = toc.Entries[:len(toc.Entries)-1] }},
		{"order", func(toc *TOC) { toc.Entries[1], toc.Entries[2] = toc.Entries[2], toc.Entries[1] }},
	} {
		if err := check(tc.mutate); !errors.Is(err, ErrTarSplitMismatch) {
			t.Errorf("%s: err = %v, want ErrTarSplitMismatch", tc.name, err)
		}
	}
	if err := check(func(*TOC) {}, WithMaxTarSplitSize(1000)); !errors.Is(err, ErrTarSplitTooLarge) {
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
