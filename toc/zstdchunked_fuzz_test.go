package toc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
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
		if err != nil || footer.Format != FormatZstdChunked {
			return
		}
		if err := checkZstdChunkedPositions(footer); err != nil {
			t.Fatalf("accepted footer %+v: %v", footer, err)
		}
		if footer.Size != ZstdChunkedFooterSize {
			return
		}
		// A parsed 72-byte footer encodes back to the same bytes, except
		// for the magic variant and the skippable magic's low nibble.
		got, err := ZstdChunkedFooter(footer)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(tail[len(tail)-ZstdChunkedFooterSize:])
		want[0] = got[0]
		copy(want[len(want)-8:], got[len(got)-8:])
		if !bytes.Equal(got, want) {
			t.Fatalf("ZstdChunkedFooter(%+v) = %x, parsed from %x", footer, got, want)
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

func TestZstdStored(t *testing.T) {
	for _, n := range []int{0, 5, 128 << 10, 300 << 10} {
		data := bytes.Repeat([]byte{'x'}, n)
		got, err := DecompressZstdChunkedTOC(zstdStored(data), int64(n))
		if n == 0 {
			got, err = DecompressZstdChunkedTOC(zstdStored(data), 0)
		}
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%d bytes: got %d bytes, %v", n, len(got), err)
		}
	}
}
