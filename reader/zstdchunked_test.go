package reader

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
	"github.com/opencontainers/go-digest"
)

// zstdChunkedInput is a tar whose files span several chunks, hold a long
// run of zeros, and whose names carry "./" prefixes.
func zstdChunkedInput(t testing.TB, mode int64) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	mtime := time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC)
	holes := append(append(pseudoRandom(3000, 1), make([]byte, 200<<10)...), pseudoRandom(9000, 2)...)
	files := []struct {
		name string
		data []byte
	}{
		{"./big", pseudoRandom(700<<10, 3)},
		{"./holes", holes},
		{"./small", []byte("small\n")},
		{"./empty", nil},
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755, ModTime: mtime})
	for _, f := range files {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: mode, Size: int64(len(f.data)), ModTime: mtime, Format: tar.FormatPAX})
		tw.Write(f.data)
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "./sym", Linkname: "small", ModTime: mtime})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: "./hard", Linkname: "./big", ModTime: mtime})
	tw.Close()
	return b.Bytes()
}

// buildZstdChunked writes input as zstd:chunked with containers/storage's
// chunks of about 64 KiB, so that the files of zstdChunkedInput span
// several.
func buildZstdChunked(t testing.TB, input []byte) ([]byte, *writer.Result) {
	t.Helper()
	var blob bytes.Buffer
	res, err := writer.Build(context.Background(), &blob, bytes.NewReader(input), writer.WithFormat(toc.FormatZstdChunked), writer.WithContentChunkMin(0))
	if err != nil {
		t.Fatal(err)
	}
	return blob.Bytes(), res
}

func openZstdChunkedBlob(t *testing.T, blob []byte, opts ...Option) (*Layer, *countingFetcher, error) {
	t.Helper()
	f := &countingFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))}
	l, err := Open(context.Background(), f, opts...)
	if err == nil {
		t.Cleanup(func() { l.Close() })
	}
	return l, f, err
}

func TestZstdChunkedWriteTarRebuildsTheInput(t *testing.T) {
	input := zstdChunkedInput(t, 0o644)
	blob, res := buildZstdChunked(t, input)
	for name, opts := range map[string][]Option{
		"footer":      {WithTailHint(100)},
		"annotations": {WithAnnotations(res.Annotations)},
	} {
		t.Run(name, func(t *testing.T) {
			l, _, err := openZstdChunkedBlob(t, blob, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if l.TOC().TarSplitDigest == "" {
				t.Error("the TOC's tar-split digest was not kept")
			}
			var out bytes.Buffer
			diffID, err := l.WriteTar(context.Background(), &out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), input) {
				t.Fatalf("WriteTar wrote %d bytes that differ from the %d-byte input", out.Len(), len(input))
			}
			if diffID != res.DiffID {
				t.Errorf("WriteTar digest %s, writer's DiffID %s", diffID, res.DiffID)
			}
			got, err := l.ReadFile("holes")
			if err != nil || !bytes.Equal(got, input[bytes.Index(input, pseudoRandom(3000, 1)):][:len(got)]) {
				t.Errorf("ReadFile(holes): %v", err)
			}
		})
	}
}

func TestZstdChunkedAnnotationsFetchIndexOnce(t *testing.T) {
	blob, res := buildZstdChunked(t, zstdChunkedInput(t, 0o644))
	_, f, err := openZstdChunkedBlob(t, blob, WithAnnotations(res.Annotations))
	if err != nil {
		t.Fatal(err)
	}
	_, footer, _ := zstdchunked.ParseAnnotations(res.Annotations)
	want := fetcher.Range{
		Offset: footer.TOCOffset - zstdchunked.SkippableFrameHeaderSize,
		Length: footer.TarSplitOffset + footer.TarSplitLength - footer.TOCOffset + zstdchunked.SkippableFrameHeaderSize,
	}
	if f.calls.Load() != 1 || len(f.asked) != 1 || f.asked[0] != want {
		t.Errorf("Open with annotations fetched %v in %d calls, want only %v", f.asked, f.calls.Load(), want)
	}

	// Annotations that contradict the pinned digest, or are malformed.
	if _, _, err := openZstdChunkedBlob(t, blob, WithAnnotations(res.Annotations), WithTOCDigest(digest.FromString("other"))); !errors.Is(err, ErrTOCDigest) {
		t.Errorf("contradicting WithTOCDigest: error %v, want ErrTOCDigest", err)
	}
	other := digest.FromString("other").String()
	bad := withAnnotation(res.Annotations, zstdchunked.AnnotationManifestChecksum, other)
	if _, _, err := openZstdChunkedBlob(t, blob, WithAnnotations(bad)); !errors.Is(err, ErrTOCDigest) {
		t.Errorf("wrong manifest checksum: error %v, want ErrTOCDigest", err)
	}
	bad = withAnnotation(res.Annotations, zstdchunked.AnnotationManifestPosition, "1:-2:3:1")
	if _, _, err := openZstdChunkedBlob(t, blob, WithAnnotations(bad)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("malformed position: error %v, want ErrCorrupt", err)
	}
	// The two spellings of a key pin different TOCs: neither is trusted.
	bad = maps.Clone(res.Annotations)
	bad[zstdchunked.LegacyAnnotationManifestChecksum] = other
	if _, _, err := openZstdChunkedBlob(t, blob, WithAnnotations(bad)); !errors.Is(err, ErrCorrupt) || !errors.Is(err, toc.ErrInvalidAnnotation) {
		t.Errorf("spellings disagree: error %v, want ErrCorrupt and toc.ErrInvalidAnnotation", err)
	}
}

// Annotations that locate the TOC but not a tar-split, as skopeo 1.9 and
// podman 4.3 write them, start the one request of Open at the TOC's
// frame: it brings the TOC, the tar-split behind it and the footer, and
// nothing before, whatever the tail hint. Positions too far from the end
// for that get the hinted tail, and a TOC over the limit fails before
// anything is fetched.
func TestZstdChunkedTOCAnnotationsFetchFromTheTOC(t *testing.T) {
	input := zstdChunkedInput(t, 0o644)
	blob, res := buildZstdChunked(t, input)
	_, footer, _ := zstdchunked.ParseAnnotations(res.Annotations)
	tocOnly := map[string]string{
		zstdchunked.AnnotationManifestChecksum: res.Annotations[zstdchunked.AnnotationManifestChecksum],
		zstdchunked.AnnotationManifestPosition: res.Annotations[zstdchunked.AnnotationManifestPosition],
	}
	size := int64(len(blob))
	start := footer.TOCOffset - zstdchunked.SkippableFrameHeaderSize
	for name, hint := range map[string]int64{"default tail hint": 0, "short tail hint": 100} {
		t.Run(name, func(t *testing.T) {
			l, f, err := openZstdChunkedBlob(t, blob, WithAnnotations(tocOnly), WithTailHint(hint))
			if err != nil {
				t.Fatal(err)
			}
			want := fetcher.Range{Offset: start, Length: size - start}
			if f.calls.Load() != 1 || len(f.asked) != 1 || f.asked[0] != want {
				t.Errorf("Open fetched %v in %d calls, want only %v: the TOC's frame to the end", f.asked, f.calls.Load(), want)
			}
			var out bytes.Buffer
			if _, err := l.WriteTar(context.Background(), &out); err != nil || !bytes.Equal(out.Bytes(), input) {
				t.Errorf("WriteTar from the tar-split the footer located: %d bytes, %v", out.Len(), err)
			}
		})
	}

	t.Run("far from the end", func(t *testing.T) {
		// A TOC of 100 bytes at the blob's start would leave more than
		// a tar-split fetched with it may take.
		big := append(pseudoRandom(2<<20, 7), blob...)
		far := withAnnotation(tocOnly, zstdchunked.AnnotationManifestPosition, "8:100:100:1")
		_, f, _ := openZstdChunkedBlob(t, big, WithAnnotations(far), WithTailHint(4096))
		want := fetcher.Range{Offset: int64(len(big)) - 4096, Length: 4096}
		if len(f.asked) == 0 || f.asked[0] != want {
			t.Errorf("Open first fetched %v, want the hinted tail %v", f.asked, want)
		}
	})

	t.Run("over the TOC limit", func(t *testing.T) {
		_, f, err := openZstdChunkedBlob(t, blob, WithAnnotations(tocOnly), WithMaxTOCSize(footer.TOCUncompressedLength-1))
		if !errors.Is(err, ErrCorrupt) || !errors.Is(err, toc.ErrTOCTooLarge) {
			t.Errorf("error %v, want ErrCorrupt and toc.ErrTOCTooLarge", err)
		}
		if f.calls.Load() != 0 {
			t.Errorf("Open fetched %v before refusing", f.asked)
		}
	})
}

// withAnnotation returns a copy of a with the zstd:chunked manifest
// annotation key (and its first spelling) set to v.
func withAnnotation(a map[string]string, key, v string) map[string]string {
	legacy := map[string]string{
		zstdchunked.AnnotationManifestChecksum: zstdchunked.LegacyAnnotationManifestChecksum,
		zstdchunked.AnnotationManifestPosition: zstdchunked.LegacyAnnotationManifestPosition,
	}
	a = maps.Clone(a)
	a[key], a[legacy[key]] = v, v
	return a
}

func TestZstdChunkedZerosAreNeverFetched(t *testing.T) {
	blob, _ := buildZstdChunked(t, zstdChunkedInput(t, 0o644))
	l, f, err := openZstdChunkedBlob(t, blob)
	if err != nil {
		t.Fatal(err)
	}
	e := contentEntry(t, l, "holes")
	var zeros *toc.Chunk
	for i := range e.Chunks {
		if e.Chunks[i].Zeros {
			zeros = &e.Chunks[i]
		}
	}
	if zeros == nil {
		t.Fatal("no zeros chunk in a file with a 200 KiB hole")
	}
	f.reset()
	if _, err := l.ReadFile("holes"); err != nil {
		t.Fatal(err)
	}
	for _, r := range f.asked {
		if r.Offset < zeros.FrameEnd && zeros.FrameOffset < r.Offset+r.Length {
			t.Errorf("fetched %v, which overlaps the zeros chunk's frame [%d,%d)", r, zeros.FrameOffset, zeros.FrameEnd)
		}
	}
}

// reassemble replaces the index frames of a zstd:chunked blob: data is
// everything before the TOC frame, tocJSON and tarSplit the new payloads
// (tarSplit already compressed).
func reassemble(t *testing.T, data, tocJSON, tarSplit []byte) []byte {
	t.Helper()
	return reassembleApart(t, data, tocJSON, tarSplit, 0)
}

// reassembleApart is reassemble with a skippable frame of gap bytes
// between the TOC and the tar-split.
func reassembleApart(t *testing.T, data, tocJSON, tarSplit []byte, gap int) []byte {
	t.Helper()
	compressed, err := zstdchunked.CompressFrame(tocJSON, 3)
	if err != nil {
		t.Fatal(err)
	}
	blob := bytes.Clone(data)
	f := toc.Footer{Format: toc.FormatZstdChunked, TOCOffset: int64(len(blob)) + 8, TOCLength: int64(len(compressed)), TOCUncompressedLength: int64(len(tocJSON))}
	blob, _ = zstdchunked.AppendSkippableFrame(blob, compressed)
	if gap > 0 {
		blob, _ = zstdchunked.AppendSkippableFrame(blob, make([]byte, gap))
	}
	f.TarSplitOffset, f.TarSplitLength = int64(len(blob))+8, int64(len(tarSplit))
	f.TarSplitUncompressedLength = uncompressedSize(t, tarSplit)
	blob, _ = zstdchunked.AppendSkippableFrame(blob, tarSplit)
	footer, err := zstdchunked.Footer(f)
	if err != nil {
		t.Fatal(err)
	}
	return append(blob, footer...)
}

// uncompressedSize returns the size of zstd-compressed data.
func uncompressedSize(t *testing.T, compressed []byte) int64 {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(compressed))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	n, err := io.Copy(io.Discard, zr)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// indexParts splits a zstd:chunked blob into its data, TOC JSON and
// compressed tar-split.
func indexParts(t *testing.T, blob []byte) (data, tocJSON, tarSplit []byte) {
	t.Helper()
	f, err := parseFooter(blob[len(blob)-toc.MaxFooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	f = zstdchunked.LocateTarSplit(f, int64(len(blob)))
	tocJSON, err = zstdchunked.DecompressTOC(blob[f.TOCOffset:f.TOCOffset+f.TOCLength], f.TOCUncompressedLength)
	if err != nil {
		t.Fatal(err)
	}
	return blob[:f.TOCOffset-8], tocJSON, blob[f.TarSplitOffset : f.TarSplitOffset+f.TarSplitLength]
}

func TestZstdChunkedTarSplitMustMatchTheTOC(t *testing.T) {
	blob, _ := buildZstdChunked(t, zstdChunkedInput(t, 0o644))
	other, _ := buildZstdChunked(t, zstdChunkedInput(t, 0o600))
	data, tocJSON, split := indexParts(t, blob)
	_, _, otherSplit := indexParts(t, other)
	// The TOC pins the other layer's tar-split, which differs in modes:
	// its digest checks out, its contents do not.
	oldDigest, newDigest := digest.FromBytes(split).String(), digest.FromBytes(otherSplit).String()
	forged := bytes.Replace(tocJSON, []byte(oldDigest), []byte(newDigest), 1)
	_, _, err := openZstdChunkedBlob(t, reassemble(t, data, forged, otherSplit))
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, zstdchunked.ErrTarSplitMismatch) {
		t.Errorf("tar-split with other modes: error %v, want ErrCorrupt and zstdchunked.ErrTarSplitMismatch", err)
	}
	// A tar-split that is not the one the TOC pins.
	_, _, err = openZstdChunkedBlob(t, reassemble(t, data, tocJSON, otherSplit))
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, zstdchunked.ErrInvalidTarSplit) {
		t.Errorf("unpinned tar-split: error %v, want ErrCorrupt and zstdchunked.ErrInvalidTarSplit", err)
	}
}

func TestZstdChunkedBadIndexFrames(t *testing.T) {
	blob, res := buildZstdChunked(t, zstdChunkedInput(t, 0o644))
	_, footer, _ := zstdchunked.ParseAnnotations(res.Annotations)

	// An index larger than the limit is refused before it is decompressed.
	if _, _, err := openZstdChunkedBlob(t, blob, WithMaxTOCSize(64)); !errors.Is(err, ErrCorrupt) || !errors.Is(err, toc.ErrTOCTooLarge) {
		t.Errorf("TOC over the limit: error %v, want ErrCorrupt and toc.ErrTOCTooLarge", err)
	}
	huge := withAnnotation(res.Annotations, zstdchunked.AnnotationManifestPosition, "8:1000000000000:1:1")
	if _, _, err := openZstdChunkedBlob(t, blob, WithAnnotations(huge)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("TOC longer than the blob: error %v, want ErrCorrupt", err)
	}

	// The TOC frame's header claims one byte less than the footer.
	lying := bytes.Clone(blob)
	at := footer.TOCOffset - 4
	binary.LittleEndian.PutUint32(lying[at:], uint32(footer.TOCLength-1))
	if _, _, err := openZstdChunkedBlob(t, lying); !errors.Is(err, ErrCorrupt) || !errors.Is(err, zstdchunked.ErrInvalidFrame) {
		t.Errorf("frame header lying about its length: error %v, want ErrCorrupt and zstdchunked.ErrInvalidFrame", err)
	}
	// A damaged TOC whose digest is pinned is reported as not the pinned
	// one, whether or not it still decodes.
	damaged := bytes.Clone(blob)
	for i := footer.TOCOffset + footer.TOCLength/2; i < footer.TOCOffset+footer.TOCLength/2+16; i++ {
		damaged[i] ^= 0xff
	}
	if _, _, err := openZstdChunkedBlob(t, damaged, WithAnnotations(res.Annotations)); !errors.Is(err, ErrTOCDigest) {
		t.Errorf("damaged pinned TOC: error %v, want ErrTOCDigest", err)
	}
	if _, _, err := openZstdChunkedBlob(t, damaged, WithTailHint(100)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("damaged unpinned TOC: error %v, want ErrCorrupt", err)
	}
	// Annotations that place the tar-split one byte off.
	off := maps.Clone(res.Annotations)
	off[zstdchunked.AnnotationTarSplitPosition] = fmt.Sprintf("%d:%d:%d", footer.TarSplitOffset+1, footer.TarSplitLength-1, footer.TarSplitUncompressedLength)
	if _, _, err := openZstdChunkedBlob(t, blob, WithAnnotations(off)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("tar-split position off by one: error %v, want ErrCorrupt", err)
	}
}

func TestWriteTarNeedsTarSplit(t *testing.T) {
	var b blobBuilder
	b.add(&toc.Entry{Name: "f"}, []byte("x"))
	blob, index := b.finish()
	l, _ := testLayer(t, blob, index)
	if _, err := l.WriteTar(context.Background(), io.Discard); !errors.Is(err, ErrNoTarSplit) {
		t.Errorf("eStargz layer: error %v, want ErrNoTarSplit", err)
	}
}

func TestZstdChunkedIndexFramesApart(t *testing.T) {
	input := zstdChunkedInput(t, 0o644)
	blob, _ := buildZstdChunked(t, input)
	data, tocJSON, split := indexParts(t, blob)
	apart := reassembleApart(t, data, tocJSON, split, 200<<10)
	l, f, err := openZstdChunkedBlob(t, apart, WithTailHint(100))
	if err != nil {
		t.Fatal(err)
	}
	// The tail, then TOC and tar-split as two ranges of one fetch.
	if f.calls.Load() != 2 || len(f.asked) != 3 {
		t.Errorf("Open fetched %v in %d calls, want the tail, then two ranges in one call", f.asked, f.calls.Load())
	}
	var out bytes.Buffer
	if _, err := l.WriteTar(context.Background(), &out); err != nil || !bytes.Equal(out.Bytes(), input) {
		t.Errorf("WriteTar: %v; tar equal to the input: %v", err, bytes.Equal(out.Bytes(), input))
	}
}
