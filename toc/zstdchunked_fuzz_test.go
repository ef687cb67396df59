package toc

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/; the zstd:chunked ones
// were cut from the golden blobs (see zstdchunked_golden_test.go).

func FuzzParseZstdChunkedFooter(f *testing.F) {
	f.Fuzz(func(t *testing.T, tail []byte) {
		footer, err := ParseFooter(tail)
		if err != nil || footer.Format != FormatZstdChunked {
			return
		}
		if err := checkZstdChunkedPositions(footer); err != nil {
			t.Fatalf("accepted footer %+v: %v", footer, err)
		}
		// A tar-split located after the TOC keeps a blob of the tail's
		// size valid, if it was.
		size := int64(len(tail))
		if CheckZstdChunkedFooter(footer, size) == nil {
			if located := LocateZstdChunkedTarSplit(footer, size); CheckZstdChunkedFooter(located, size) != nil {
				t.Fatalf("located tar-split %+v in a valid %d-byte blob with footer %+v", located, size, footer)
			}
		}
		// A parsed footer encodes back to the same bytes, except for the
		// magic variant and the skippable magic's low nibble.
		got, err := ZstdChunkedFooter(footer)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(tail[len(tail)-footer.Size:])
		want[0] = got[0]
		copy(want[len(want)-8:], got[len(got)-8:])
		if !bytes.Equal(got, want) {
			t.Fatalf("ZstdChunkedFooter(%+v) = %x, parsed from %x", footer, got, want)
		}
	})
}

// FuzzParseZstdChunkedAnnotations checks that any annotations accepted
// are written back the same by ZstdChunkedAnnotations, under both
// spellings.
func FuzzParseZstdChunkedAnnotations(f *testing.F) {
	const d = "sha256:dc0e9c3658a1a3ed1ec94274d8b19925c93e1abb7ddba294923ad9bde30f8cb8"
	f.Add(d, "100:20:80:1", d, "100:20:80:1", "128:30:90")
	f.Add(d, "100:20:80:1", "", "", "")
	f.Add("", "", d, "8:1:1:1", "")
	f.Add(d, "100:20:80:1", d, "100:20:81:1", "")
	f.Fuzz(func(t *testing.T, checksum, position, legacyChecksum, legacyPosition, tarSplit string) {
		a := make(map[string]string)
		for k, v := range map[string]string{
			AnnotationZstdChunkedManifestChecksum:       checksum,
			AnnotationZstdChunkedManifestPosition:       position,
			LegacyAnnotationZstdChunkedManifestChecksum: legacyChecksum,
			LegacyAnnotationZstdChunkedManifestPosition: legacyPosition,
			AnnotationZstdChunkedTarSplitPosition:       tarSplit,
		} {
			if v != "" {
				a[k] = v
			}
		}
		tocDigest, footer, err := ParseZstdChunkedAnnotations(a)
		if err != nil {
			if !errors.Is(err, ErrInvalidAnnotation) && !errors.Is(err, ErrMissingAnnotation) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		b := ZstdChunkedAnnotations(tocDigest, "", footer)
		for k, v := range a {
			if b[k] != v && (k == AnnotationZstdChunkedManifestChecksum || k == LegacyAnnotationZstdChunkedManifestChecksum) {
				t.Fatalf("%s: %q written back as %q", k, v, b[k])
			}
		}
		if b[AnnotationZstdChunkedManifestPosition] != b[LegacyAnnotationZstdChunkedManifestPosition] {
			t.Fatalf("written back with two positions: %v", b)
		}
		again, againFooter, err := ParseZstdChunkedAnnotations(b)
		if err != nil || again != tocDigest || againFooter != footer {
			t.Fatalf("annotations %v written back as %v: %s, %+v, %v", a, b, again, againFooter, err)
		}
	})
}

func FuzzSkippableFrames(f *testing.F) {
	f.Fuzz(func(t *testing.T, region []byte, regionOffset, payloadOffset, length int64) {
		if payload, n, err := ParseSkippableFrame(region); err == nil {
			if n > len(region) || n != SkippableFrameHeaderSize+len(payload) {
				t.Fatalf("frame of %d bytes with %d-byte payload from %d bytes", n, len(payload), len(region))
			}
			again, err := AppendSkippableFrame(nil, payload)
			if err != nil || !bytes.Equal(again[4:], region[4:n]) {
				t.Fatalf("re-encoding %x: %x, %v", region[:n], again, err)
			}
		} else if !errors.Is(err, ErrInvalidFrame) {
			t.Fatalf("error %v does not wrap ErrInvalidFrame", err)
		}
		payload, err := SkippableFramePayload(region, regionOffset, payloadOffset, length)
		if err != nil {
			return
		}
		if int64(len(payload)) != length {
			t.Fatalf("payload of %d bytes, want %d", len(payload), length)
		}
	})
}

func FuzzUnmarshalZstdChunked(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, tocOffset int64) {
		toc, tarSplitDigest, err := UnmarshalZstdChunked(data, tocOffset)
		if err != nil {
			return
		}
		checkTOCInvariants(t, toc, tocOffset-SkippableFrameHeaderSize)
		// Whatever decodes and zstd:chunked can express encodes, and from
		// then on the encoding is stable.
		js, err := MarshalZstdChunked(toc, tarSplitDigest)
		if err != nil {
			if errors.Is(err, ErrInvalidTOC) {
				return // e.g. eStargz chunks sharing a frame
			}
			t.Fatalf("MarshalZstdChunked of a decoded TOC: %v", err)
		}
		toc2, ts2, err := UnmarshalZstdChunked(js, tocOffset)
		if err != nil {
			t.Fatalf("decoding our own encoding: %v\n%s", err, js)
		}
		js2, err := MarshalZstdChunked(toc2, ts2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(js, js2) {
			t.Fatalf("encoding not stable:\n%s\n%s", js, js2)
		}
	})
}

func FuzzDecompressZstdChunkedTOC(f *testing.F) {
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, compressed []byte, uncompressedLength int64) {
		js, err := DecompressZstdChunkedTOC(compressed, uncompressedLength, WithMaxTOCSize(limit))
		if err == nil && len(js) > limit {
			t.Fatalf("returned %d bytes over the %d limit", len(js), limit)
		}
	})
}

// FuzzTarSplit feeds an uncompressed tar-split stream (compressed here, so
// the fuzzer works on the JSON records) and a TOC JSON to the tar-split
// reader, check and replay.
func FuzzTarSplit(f *testing.F) {
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, records []byte, tocJSON []byte) {
		compressed, err := CompressZstd(records, 1)
		if err != nil {
			t.Fatal(err)
		}
		toc, _, err := UnmarshalZstdChunked(tocJSON, 1<<40)
		if err != nil {
			toc = &TOC{}
		}
		r, err := NewTarSplitReader(compressed, "", WithMaxTarSplitSize(limit))
		if err != nil {
			t.Fatal(err)
		}
		size, err := CheckTarSplit(r, toc)
		r.Close()
		if err == nil && size < 0 {
			t.Fatalf("negative tar size %d", size)
		}
		r, err = NewTarSplitReader(compressed, "", WithMaxTarSplitSize(limit))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var out countingWriter
		out.w = io.Discard
		n, _ := WriteTarFromTarSplit(&out, r, func(name string, size int64) (io.ReadCloser, error) {
			return io.NopCloser(io.LimitReader(zeroReader{}, min(size, limit))), nil
		})
		if n != out.n {
			t.Fatalf("replay reports %d bytes, wrote %d", n, out.n)
		}
	})
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
