package zstdchunked

import (
	"bytes"
	"encoding/hex"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/toc"
)

func TestZstdChunkedFooterRoundTrip(t *testing.T) {
	want := toc.Footer{
		Format: toc.FormatZstdChunked, Size: FooterSize,
		TOCOffset: 0x1234, TOCLength: 300, TOCUncompressedLength: 1000,
		TarSplitOffset: 0x1234 + 300 + 8, TarSplitLength: 50, TarSplitUncompressedLength: 700,
	}
	b, err := Footer(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != FooterSize {
		t.Fatalf("footer is %d bytes, want %d", len(b), FooterSize)
	}
	wantHex := "502a4d1840000000" + "3412000000000000" + "2c01000000000000" + "e803000000000000" + "0100000000000000" +
		"6813000000000000" + "3200000000000000" + "bc02000000000000" + "474e556c496e5578"
	if got := hex.EncodeToString(b); got != wantHex {
		t.Fatalf("footer bytes\n got %s\nwant %s", got, wantHex)
	}
	got, err := ParseFooter(append([]byte("data before the footer"), b...))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("ParseFooter = %+v, want %+v", got, want)
	}
}

func TestParseLegacyZstdChunkedFooter(t *testing.T) {
	// The 40-byte payload estargz/zstdchunked writes: TOC offset, compressed
	// length, uncompressed length, manifest type, magic "GnUlInUx".
	b, _ := hex.DecodeString("502a4d1828000000" + "0800010000000000" + "6400000000000000" + "c800000000000000" +
		"0100000000000000" + "476e556c496e5578")
	got, err := ParseFooter(b)
	if err != nil {
		t.Fatal(err)
	}
	want := toc.Footer{Format: toc.FormatZstdChunked, Size: LegacyFooterSize, TOCOffset: 0x10008, TOCLength: 100, TOCUncompressedLength: 200}
	if got != want {
		t.Fatalf("ParseFooter = %+v, want %+v", got, want)
	}
}

func TestLegacyZstdChunkedFooter(t *testing.T) {
	// The 48-byte footer has no room for the tar-split, which is dropped.
	f := toc.Footer{Format: toc.FormatZstdChunked, Size: LegacyFooterSize, TOCOffset: 0x10008, TOCLength: 100, TOCUncompressedLength: 200,
		TarSplitOffset: 0x10008 + 108, TarSplitLength: 5, TarSplitUncompressedLength: 9}
	b, err := Footer(f)
	if err != nil {
		t.Fatal(err)
	}
	want := "502a4d1828000000" + "0800010000000000" + "6400000000000000" + "c800000000000000" + "0100000000000000" + "476e556c496e5578"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("footer bytes\n got %s\nwant %s", got, want)
	}
	if _, err := Footer(toc.Footer{Size: 56, TOCOffset: 8, TOCLength: 1, TOCUncompressedLength: 1}); !errors.Is(err, toc.ErrInvalidFooter) {
		t.Fatalf("56-byte footer: err = %v, want ErrInvalidFooter", err)
	}
}

func TestLocateZstdChunkedTarSplit(t *testing.T) {
	// TOC frame [100, 130), then a tar-split frame [130, 160), then the
	// 48-byte footer: a 208-byte blob.
	f := toc.Footer{Format: toc.FormatZstdChunked, Size: LegacyFooterSize, TOCOffset: 108, TOCLength: 22, TOCUncompressedLength: 50}
	located := f
	located.TarSplitOffset, located.TarSplitLength = 138, 22
	given := located
	given.TarSplitUncompressedLength = 70
	fromAnnotations := f
	fromAnnotations.Size = 0
	for _, tc := range []struct {
		name string
		f    toc.Footer
		size int64
		want toc.Footer
	}{
		{"after the TOC", f, 208, located},
		{"a footer that says", given, 208, given},
		{"annotations", fromAnnotations, 208, fromAnnotations},
		{"footer right after the TOC", f, 130 + 48, f},
		{"an empty frame between", f, 130 + 8 + 48, f},
		{"TOC past the footer", f, 150, f},
		{"blob smaller than the footer", f, 40, f},
		{"eStargz", toc.Footer{Format: toc.FormatEStargz, Size: 51, TOCOffset: 10}, 208, toc.Footer{Format: toc.FormatEStargz, Size: 51, TOCOffset: 10}},
	} {
		if got := LocateTarSplit(tc.f, tc.size); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestParseZstdChunkedFooterErrors(t *testing.T) {
	good, err := Footer(toc.Footer{TOCOffset: 8, TOCLength: 10, TOCUncompressedLength: 20})
	if err != nil {
		t.Fatal(err)
	}
	corrupt := func(i int, v byte) []byte {
		b := bytes.Clone(good)
		b[i] = v
		return b
	}
	for _, tc := range []struct {
		name string
		tail []byte
	}{
		{"manifest type 2", corrupt(8+24, 2)},
		{"offset above 2^63", corrupt(8+7, 0x80)},
		{"TOC offset inside its own frame header", corrupt(8, 7)},
		{"no TOC length", corrupt(8+8, 0)},
	} {
		if _, err := ParseFooter(tc.tail); !errors.Is(err, toc.ErrInvalidFooter) {
			t.Errorf("%s: err = %v, want ErrInvalidFooter", tc.name, err)
		}
	}
	// A wrong magic or a frame header announcing another length is simply
	// not a zstd:chunked footer.
	for _, tail := range [][]byte{corrupt(71, 'X'), corrupt(4, 65), corrupt(0, 0x28), good[1:]} {
		if f, err := ParseFooter(tail); err == nil {
			t.Errorf("ParseFooter(%x) = %+v, want an error", tail, f)
		}
	}
}

func TestSkippableFrames(t *testing.T) {
	b, err := AppendSkippableFrame([]byte("zz"), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "7a7a502a4d180500000068656c6c6f"; hex.EncodeToString(b) != want {
		t.Fatalf("frame %x, want %s", b, want)
	}
	payload, n, err := ParseSkippableFrame(append(b[2:], "next"...))
	if err != nil || string(payload) != "hello" || n != 13 {
		t.Fatalf("ParseSkippableFrame = %q, %d, %v", payload, n, err)
	}
	// The frame's payload at blob offset 10 of a region fetched at offset 0.
	if p, err := SkippableFramePayload(b, 0, 10, 5); err != nil || string(p) != "hello" {
		t.Fatalf("SkippableFramePayload = %q, %v", p, err)
	}
	for _, tc := range []struct {
		name                        string
		region                      []byte
		regionOff, payloadOff, size int64
	}{
		{"frame claims less than the footer says", b, 0, 10, 4},
		{"frame claims more than fetched", b[:len(b)-1], 0, 10, 5},
		{"payload before the region", b, 4, 10, 5},
		{"header would precede the blob", b, 0, 4, 5},
		{"not a skippable frame", []byte("0123456789abcdefghij"), 0, 8, 5},
		{"negative length", b, 0, 10, -1},
	} {
		if _, err := SkippableFramePayload(tc.region, tc.regionOff, tc.payloadOff, tc.size); !errors.Is(err, ErrInvalidFrame) {
			t.Errorf("%s: err = %v, want ErrInvalidFrame", tc.name, err)
		}
	}
	lying := []byte{0x50, 0x2a, 0x4d, 0x18, 0xff, 0xff, 0xff, 0xff, 1, 2, 3}
	if _, _, err := ParseSkippableFrame(lying); !errors.Is(err, ErrInvalidFrame) {
		t.Fatalf("frame claiming 4 GiB: err = %v", err)
	}
}

func TestZstdChunkedAnnotations(t *testing.T) {
	f := toc.Footer{Format: toc.FormatZstdChunked, TOCOffset: 100, TOCLength: 20, TOCUncompressedLength: 80,
		TarSplitOffset: 128, TarSplitLength: 30, TarSplitUncompressedLength: 90}
	const d = "sha256:dc0e9c3658a1a3ed1ec94274d8b19925c93e1abb7ddba294923ad9bde30f8cb8"
	const ts = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	a := Annotations(d, ts, f)
	want := map[string]string{
		AnnotationManifestChecksum:       d,
		AnnotationManifestPosition:       "100:20:80:1",
		LegacyAnnotationManifestChecksum: d,
		LegacyAnnotationManifestPosition: "100:20:80:1",
		AnnotationTarSplitPosition:       "128:30:90",
		AnnotationTarSplitChecksum:       ts,
	}
	if !maps.Equal(a, want) {
		t.Fatalf("annotations\n got %v\nwant %v", a, want)
	}
	gotD, gotF, err := ParseAnnotations(a)
	if err != nil || gotD != d || gotF != f {
		t.Fatalf("ParseAnnotations = %s, %+v, %v", gotD, gotF, err)
	}
	noTarSplit := f
	noTarSplit.TarSplitOffset, noTarSplit.TarSplitLength, noTarSplit.TarSplitUncompressedLength = 0, 0, 0
	if a := Annotations(d, ts, noTarSplit); len(a) != 4 {
		t.Fatalf("annotations without a tar-split: %v", a)
	}
	// Either spelling of each key will do, alone or beside the other.
	for _, keys := range [][2]string{
		{LegacyAnnotationManifestChecksum, LegacyAnnotationManifestPosition},
		{AnnotationManifestChecksum, LegacyAnnotationManifestPosition},
		{LegacyAnnotationManifestChecksum, AnnotationManifestPosition},
	} {
		m := map[string]string{keys[0]: d, keys[1]: "100:20:80:1"}
		if gotD, gotF, err := ParseAnnotations(m); err != nil || gotD != d || gotF.TOCOffset != 100 || gotF.TarSplitOffset != 0 {
			t.Fatalf("%v: %s, %+v, %v", keys, gotD, gotF, err)
		}
	}
	with := func(k, v string) map[string]string {
		m := Annotations(d, ts, f)
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	without := func(keys ...string) map[string]string {
		m := Annotations(d, ts, f)
		for _, k := range keys {
			delete(m, k)
		}
		return m
	}
	for _, tc := range []struct {
		name string
		a    map[string]string
		want error
	}{
		{"no checksum", without(AnnotationManifestChecksum, LegacyAnnotationManifestChecksum), toc.ErrMissingAnnotation},
		{"no position", without(AnnotationManifestPosition, LegacyAnnotationManifestPosition), toc.ErrMissingAnnotation},
		{"checksums disagree", with(LegacyAnnotationManifestChecksum, ts), toc.ErrInvalidAnnotation},
		{"positions disagree", with(AnnotationManifestPosition, "100:21:80:1"), toc.ErrInvalidAnnotation},
		{"bad digest", with(AnnotationManifestChecksum, "sha256:zz"), toc.ErrInvalidAnnotation},
		{"three fields", with(AnnotationManifestPosition, "100:20:80"), toc.ErrInvalidAnnotation},
		{"sign", with(AnnotationManifestPosition, "+100:20:80:1"), toc.ErrInvalidAnnotation},
		{"tar-split four fields", with(AnnotationTarSplitPosition, "128:30:90:1"), toc.ErrInvalidAnnotation},
		{"tar-split overlaps TOC", with(AnnotationTarSplitPosition, "110:30:90"), toc.ErrInvalidAnnotation},
	} {
		if _, _, err := ParseAnnotations(tc.a); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	// Malformed values of one spelling (the other absent).
	for _, pos := range []string{"100:20:80:2", "100: 20:80:1", "99999999999999999999:20:80:1", strings.Repeat("9", 1000)} {
		for _, key := range []string{AnnotationManifestPosition, LegacyAnnotationManifestPosition} {
			m := map[string]string{AnnotationManifestChecksum: d, key: pos}
			_, _, err := ParseAnnotations(m)
			if !errors.Is(err, toc.ErrInvalidAnnotation) {
				t.Errorf("%s=%.20q: err = %v, want ErrInvalidAnnotation", key, pos, err)
			} else if len(err.Error()) > 400 {
				t.Errorf("%s=%.20q: error of %d bytes", key, pos, len(err.Error()))
			}
		}
	}
}

func TestUnmarshalZstdChunkedErrors(t *testing.T) {
	const d = `"sha256:dc0e9c3658a1a3ed1ec94274d8b19925c93e1abb7ddba294923ad9bde30f8cb8"`
	const tocOffset = 1008 // data ends at 1000
	for _, tc := range []struct {
		name, json string
		want       error
	}{
		{"version 2", `{"version":2,"entries":[]}`, toc.ErrUnsupportedVersion},
		{"no version", `{"entries":[]}`, toc.ErrUnsupportedVersion},
		{"bad JSON", `{"version":1,"entries":[`, toc.ErrInvalidTOC},
		{"bad tarSplitDigest", `{"version":1,"entries":[],"tarSplitDigest":"md5:x"}`, toc.ErrInvalidTOC},
		{"unknown chunkType", `{"version":1,"entries":[{"type":"reg","name":"f","size":4,"offset":10,"endOffset":20,"chunkType":"holes"}]}`, toc.ErrInvalidTOC},
		{"endOffset before offset", `{"version":1,"entries":[{"type":"reg","name":"f","size":4,"offset":10,"endOffset":10}]}`, toc.ErrInvalidTOC},
		{"endOffset in the TOC frame", `{"version":1,"entries":[{"type":"reg","name":"f","size":4,"offset":10,"endOffset":1001}]}`, toc.ErrInvalidTOC},
		{"offset in the TOC frame", `{"version":1,"entries":[{"type":"reg","name":"f","size":4,"offset":1000}]}`, toc.ErrInvalidTOC},
		{"chunk first", `{"version":1,"entries":[{"type":"chunk","name":"f","chunkOffset":4,"chunkSize":4,"offset":10}]}`, toc.ErrInvalidTOC},
		{"chunks leave a gap", `{"version":1,"entries":[{"type":"reg","name":"f","size":10,"offset":10,"chunkSize":4},{"type":"chunk","name":"f","chunkOffset":5,"chunkSize":5,"offset":20}]}`, toc.ErrInvalidTOC},
		{"chunks go backwards", `{"version":1,"entries":[{"type":"reg","name":"f","size":8,"offset":30,"chunkSize":4},{"type":"chunk","name":"f","chunkOffset":4,"chunkSize":4,"offset":20}]}`, toc.ErrInvalidTOC},
		{"dot-dot name", `{"version":1,"entries":[{"type":"dir","name":"a/../../b"}]}`, toc.ErrInvalidTOC},
		{"chunkType on a dir", `{"version":1,"entries":[{"type":"dir","name":"d","chunkType":"zeros"}]}`, toc.ErrInvalidTOC},
		{"bad modtime", `{"version":1,"entries":[{"type":"dir","name":"d","modtime":"yesterday"}]}`, toc.ErrInvalidTOC},
		{"bad xattr base64", `{"version":1,"entries":[{"type":"dir","name":"d","xattrs":{"user.a":"!!"}}]}`, toc.ErrInvalidTOC},
		{"impossible ratio", `{"version":1,"entries":[{"type":"reg","name":"f","size":999999999,"digest":` + d + `,"offset":10,"endOffset":11}]}`, toc.ErrInvalidTOC},
	} {
		if _, _, err := Unmarshal([]byte(tc.json), tocOffset); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, _, err := Unmarshal([]byte(`{"version":1,"entries":[]}`), 7); !errors.Is(err, toc.ErrInvalidTOC) {
		t.Errorf("TOC offset inside the frame header: err = %v", err)
	}
}

func TestZstdChunkedTOCLimits(t *testing.T) {
	js := []byte(`{"version":1,"entries":[{"type":"dir","name":"a"},{"type":"dir","name":"b"},{"type":"dir","name":"c"}]}`)
	if _, _, err := Unmarshal(js, 100, toc.WithMaxEntries(2)); !errors.Is(err, toc.ErrTOCTooLarge) {
		t.Errorf("3 entries, limit 2: err = %v", err)
	}
	// A small compressed TOC that inflates past the limit is cut off there.
	bomb, err := CompressFrame(make([]byte, 10<<20), 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecompressTOC(bomb, 0, toc.WithMaxTOCSize(1<<20)); !errors.Is(err, toc.ErrTOCTooLarge) {
		t.Errorf("10 MiB TOC, 1 MiB limit: err = %v", err)
	}
	if _, err := DecompressTOC(bomb, 10<<20, toc.WithMaxTOCSize(1<<20)); !errors.Is(err, toc.ErrTOCTooLarge) {
		t.Errorf("footer announcing 10 MiB, 1 MiB limit: err = %v", err)
	}
	small, err := CompressFrame(js, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecompressTOC(small, int64(len(js))+1); !errors.Is(err, toc.ErrInvalidTOC) {
		t.Errorf("length other than the footer's: err = %v", err)
	}
	if _, err := DecompressTOC([]byte("not zstd"), 0); !errors.Is(err, toc.ErrInvalidTOC) {
		t.Errorf("garbage: err = %v", err)
	}
}

func TestMarshalZstdChunkedRejectsSharedFrames(t *testing.T) {
	index := &toc.TOC{Entries: []*toc.Entry{{Name: "f", Type: toc.TypeReg, Size: 4, Chunks: []toc.Chunk{
		{Size: 2, FrameOffset: 10, FrameEnd: 20}, {Offset: 2, Size: 2, FrameOffset: 10, FrameEnd: 20, InnerOffset: 2},
	}}}}
	if _, err := Marshal(index, ""); !errors.Is(err, toc.ErrInvalidTOC) {
		t.Fatalf("err = %v, want ErrInvalidTOC", err)
	}
}

// TestZstdChunkedFooterSizes checks what a footer's lengths can claim:
// sizes zstd cannot turn into each other, and a tar-split larger than its
// verified TOC can need or placed over its data.
func TestZstdChunkedFooterSizes(t *testing.T) {
	ok := toc.Footer{
		Format: toc.FormatZstdChunked, Size: FooterSize,
		TOCOffset: 1008, TOCLength: 300, TOCUncompressedLength: 1000,
		TarSplitOffset: 1316, TarSplitLength: 50, TarSplitUncompressedLength: 700,
	}
	if err := CheckFooter(ok, 2000); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*toc.Footer){
		"TOC expanding beyond zstd": func(f *toc.Footer) { f.TOCUncompressedLength = 300*maxZstdRatio + maxZstdRatio },
		"TOC compressing to more":   func(f *toc.Footer) { f.TOCUncompressedLength, f.TOCLength = 1, 100<<10 },
		"tar-split beyond zstd":     func(f *toc.Footer) { f.TarSplitUncompressedLength = 1 << 30 },
		"tar-split compressing more": func(f *toc.Footer) {
			f.TarSplitOffset, f.TarSplitLength, f.TarSplitUncompressedLength = 1<<30, 1<<30, 1
		},
	} {
		f := ok
		mutate(&f)
		if err := CheckFooter(f, 1<<31); !errors.Is(err, toc.ErrInvalidFooter) {
			t.Errorf("%s: error %v, want ErrInvalidFooter", name, err)
		}
	}

	index := &toc.TOC{Entries: []*toc.Entry{
		{Name: "f", Type: toc.TypeReg, Size: 10, Chunks: []toc.Chunk{{Size: 10, FrameOffset: 0, FrameEnd: 900}}},
		{Name: "d", Type: toc.TypeDir},
	}}
	if err := CheckTarSplitPosition(ok, index); err != nil {
		t.Fatal(err)
	}
	huge := ok
	huge.TarSplitLength, huge.TarSplitUncompressedLength = 1<<30, 1<<30
	if err := CheckTarSplitPosition(huge, index); !errors.Is(err, ErrTarSplitTooLarge) {
		t.Errorf("1 GiB tar-split for two entries: error %v, want ErrTarSplitTooLarge", err)
	}
	over := ok
	over.TarSplitOffset = 500
	if err := CheckTarSplitPosition(over, index); !errors.Is(err, toc.ErrInvalidFooter) {
		t.Errorf("tar-split over the data: error %v, want ErrInvalidFooter", err)
	}
}
