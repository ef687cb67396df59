package zstdchunked

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/lazylayer/lazylayer/toc"

	"github.com/lazylayer/lazylayer/internal/iox"
	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/lazylayer/lazylayer/internal/toctest"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/. They are kept to a few
// hundred bytes: the fuzzing engine minimizes every input that finds new
// coverage, in time quadratic in its length, and explores nothing
// meanwhile, so one multi-kilobyte seed stalls a run for the minimization
// timeout (60 s) at each find. The golden blobs are covered by ordinary
// tests (see zstdchunked_golden_test.go).

// zstdStored frames data as one zstd frame of raw (stored) blocks, as a
// fuzz target's input to a zstd decoder: unlike an encoder, it costs
// nothing per execution.
func zstdStored(data []byte) []byte {
	const maxBlock = 128 << 10
	out := binary.LittleEndian.AppendUint32(nil, 0xFD2FB528)
	out = append(out, 0xE0) // single segment, 8-byte content size
	out = binary.LittleEndian.AppendUint64(out, uint64(len(data)))
	for {
		n := min(len(data), maxBlock)
		last := uint32(0)
		if n == len(data) {
			last = 1
		}
		h := last | uint32(n)<<3 // block type 0: raw
		out = append(out, byte(h), byte(h>>8), byte(h>>16))
		out, data = append(out, data[:n]...), data[n:]
		if last == 1 {
			return out
		}
	}
}

func FuzzParseZstdChunkedFooter(f *testing.F) {
	f.Fuzz(func(t *testing.T, tail []byte) {
		footer, err := ParseFooter(tail)
		if err != nil || footer.Format != toc.FormatZstdChunked {
			return
		}
		if err := checkZstdChunkedPositions(footer); err != nil {
			t.Fatalf("accepted footer %+v: %v", footer, err)
		}
		// A tar-split located after the TOC keeps a blob of the tail's
		// size valid, if it was.
		size := int64(len(tail))
		if CheckFooter(footer, size) == nil {
			if located := LocateTarSplit(footer, size); CheckFooter(located, size) != nil {
				t.Fatalf("located tar-split %+v in a valid %d-byte blob with footer %+v", located, size, footer)
			}
		}
		// A parsed footer encodes back to the same bytes, except for the
		// magic variant and the skippable magic's low nibble.
		got, err := Footer(footer)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(tail[len(tail)-footer.Size:])
		want[0] = got[0]
		copy(want[len(want)-8:], got[len(got)-8:])
		if !bytes.Equal(got, want) {
			t.Fatalf("Footer(%+v) = %x, parsed from %x", footer, got, want)
		}
	})
}

// FuzzParseZstdChunkedAnnotations checks that any annotations accepted
// are written back the same by Annotations, under both
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
			AnnotationManifestChecksum:       checksum,
			AnnotationManifestPosition:       position,
			LegacyAnnotationManifestChecksum: legacyChecksum,
			LegacyAnnotationManifestPosition: legacyPosition,
			AnnotationTarSplitPosition:       tarSplit,
		} {
			if v != "" {
				a[k] = v
			}
		}
		tocDigest, footer, err := ParseAnnotations(a)
		if err != nil {
			if !errors.Is(err, toc.ErrInvalidAnnotation) && !errors.Is(err, toc.ErrMissingAnnotation) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		b := Annotations(tocDigest, "", footer)
		for k, v := range a {
			if b[k] != v && (k == AnnotationManifestChecksum || k == LegacyAnnotationManifestChecksum) {
				t.Fatalf("%s: %q written back as %q", k, v, b[k])
			}
		}
		if b[AnnotationManifestPosition] != b[LegacyAnnotationManifestPosition] {
			t.Fatalf("written back with two positions: %v", b)
		}
		again, againFooter, err := ParseAnnotations(b)
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
		index, tarSplitDigest, err := Unmarshal(data, tocOffset)
		if err != nil {
			return
		}
		toctest.CheckTOCInvariants(t, index, tocOffset-SkippableFrameHeaderSize)
		// Whatever decodes and zstd:chunked can express encodes, and from
		// then on the encoding is stable.
		js, err := Marshal(index, tarSplitDigest)
		if err != nil {
			if errors.Is(err, toc.ErrInvalidTOC) {
				return // e.g. eStargz chunks sharing a frame
			}
			t.Fatalf("Marshal of a decoded TOC: %v", err)
		}
		toc2, ts2, err := Unmarshal(js, tocOffset)
		if err != nil {
			t.Fatalf("decoding our own encoding: %v\n%s", err, js)
		}
		js2, err := Marshal(toc2, ts2)
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
		js, err := DecompressTOC(compressed, uncompressedLength, toc.WithMaxTOCSize(limit))
		if err == nil && len(js) > limit {
			t.Fatalf("returned %d bytes over the %d limit", len(js), limit)
		}
	})
}

// FuzzTarSplit feeds an uncompressed tar-split stream (framed here, so
// the fuzzer works on the JSON records) and a TOC JSON to the tar-split
// reader, check and replay. Whatever CheckTarSplit accepts rebuilds a tar
// that archive/tar reads as exactly the TOC's entries.
func FuzzTarSplit(f *testing.F) {
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, records []byte, tocJSON []byte) {
		compressed := zstdStored(records)
		index, _, err := Unmarshal(tocJSON, 1<<40)
		if err != nil {
			index = &toc.TOC{}
		}
		r, err := NewTarSplitReader(compressed, "", WithMaxTarSplitSize(limit))
		if err != nil {
			t.Fatal(err)
		}
		size, err := CheckTarSplit(r, index)
		r.Close()
		if err == nil {
			// Files larger than the limit are left out of the property.
			if rebuilt, ok := replayWithZeros(t, compressed, limit); ok {
				if size != int64(len(rebuilt)) {
					t.Fatalf("CheckTarSplit reports a %d-byte tar, replay has %d", size, len(rebuilt))
				}
				tartest.CheckRebuilt(t, rebuilt, index.Entries)
			}
		}
		r, err = NewTarSplitReader(compressed, "", WithMaxTarSplitSize(limit))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var out iox.CountingWriter
		out.W = io.Discard
		n, _ := WriteTarFromTarSplit(&out, r, func(name string, size int64) (io.ReadCloser, error) {
			return io.NopCloser(io.LimitReader(zeroReader{}, min(size, limit))), nil
		})
		if n != out.N {
			t.Fatalf("replay reports %d bytes, wrote %d", n, out.N)
		}
	})
}

// replayWithZeros rebuilds the tar a tar-split describes with zero bytes
// for every file's contents, checksums aside, unless it would exceed limit
// bytes.
func replayWithZeros(t *testing.T, compressed []byte, limit int) ([]byte, bool) {
	r, err := NewTarSplitReader(compressed, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var b bytes.Buffer
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return b.Bytes(), true
		}
		if err != nil || rec.Size > int64(limit-b.Len()) {
			return nil, false
		}
		if rec.Type == TarSplitSegment {
			b.Write(rec.Payload)
		} else {
			b.Write(make([]byte, rec.Size))
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestZstdStored(t *testing.T) {
	for _, n := range []int{0, 5, 128 << 10, 300 << 10} {
		data := bytes.Repeat([]byte{'x'}, n)
		got, err := DecompressTOC(zstdStored(data), int64(n))
		if n == 0 {
			got, err = DecompressTOC(zstdStored(data), 0)
		}
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%d bytes: got %d bytes, %v", n, len(got), err)
		}
	}
}
