package estargz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/archive/tar"
)

// syntheticTOC returns a TOC of about n entries shaped like a large layer:
// a directory every 20 files, most files one chunk, every tenth file three.
func syntheticTOC(n int) (index *toc.TOC, tocOffset int64) {
	index = &toc.TOC{Format: toc.FormatEStargz, ChunkSize: 4 << 20}
	mt := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var offset int64 = 100
	var dir string
	for i := 0; len(index.Entries) < n; i++ {
		if i%20 == 0 {
			dir = fmt.Sprintf("usr/lib/pkg%05d", i/20)
			index.Entries = append(index.Entries, &toc.Entry{Name: dir, Type: toc.TypeDir, Mode: 0o755, ModTime: mt, UserName: "root", GroupName: "root"})
		}
		name := fmt.Sprintf("%s/file%05d.so", dir, i)
		nChunks := 1
		if i%10 == 0 {
			nChunks = 3
		}
		e := &toc.Entry{Name: name, Type: toc.TypeReg, Mode: 0o644, ModTime: mt, UserName: "root", GroupName: "root",
			Digest: digest.FromString(name)}
		for c := range nChunks {
			size := int64(4 << 20)
			if c == nChunks-1 {
				size = 12345
			}
			e.Chunks = append(e.Chunks, toc.Chunk{Offset: e.Size, Size: size, Digest: digest.FromString(fmt.Sprint(name, c)), FrameOffset: offset})
			e.Size += size
			offset += size / 3
		}
		index.Entries = append(index.Entries, e)
	}
	return index, offset
}

func BenchmarkUnmarshalEStargz(b *testing.B) {
	index, tocOffset := syntheticTOC(50000)
	js, err := Marshal(index)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(js)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(js, tocOffset); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalEStargz(b *testing.B) {
	index, _ := syntheticTOC(50000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(index); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalEStargzEncodingJSON is BenchmarkMarshalEStargz with
// json.MarshalIndent as the encoder, as it was before the hand-written
// one: the baseline the latter is measured against.
func BenchmarkMarshalEStargzEncodingJSON(b *testing.B) {
	index, _ := syntheticTOC(50000)
	b.ReportAllocs()
	for b.Loop() {
		doc, err := newEStargzDocument(index)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := json.MarshalIndent(doc, "", "\t"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadEStargzTOCMember(b *testing.B) {
	index, _ := syntheticTOC(50000)
	js, err := Marshal(index)
	if err != nil {
		b.Fatal(err)
	}
	var member bytes.Buffer
	if err := WriteTOCMember(&member, js, gzip.BestCompression); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(js)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadTOCMember(member.Bytes()); err != nil {
			b.Fatal(err)
		}
	}
}

// syntheticZstdChunked returns the index frames of a zstd:chunked layer
// of about n entries shaped as syntheticTOC's (15,000 is the Go
// toolchain's size): the compressed TOC and tar-split, the tar-split's
// digest, and the footer locating them. The tar-split holds each entry's
// tar header block, after the previous file's padding, and its file
// record, as tar-split's disassembler writes them.
func syntheticZstdChunked(tb testing.TB, n int) (compressedTOC, compressedTarSplit []byte, tarSplitDigest digest.Digest, f toc.Footer) {
	index, dataEnd := syntheticTOC(n)
	index.Format = toc.FormatZstdChunked
	var split bytes.Buffer
	tw, err := zstdchunked.NewTarSplitWriter(&split, 10, 0)
	if err != nil {
		tb.Fatal(err)
	}
	var padding int64
	for _, e := range index.Entries {
		hdr := &tar.Header{Name: e.Name, Mode: e.Mode, Size: e.Size, ModTime: e.ModTime,
			Uname: e.UserName, Gname: e.GroupName, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
		if e.Type == toc.TypeDir {
			hdr.Name, hdr.Typeflag = e.Name+"/", tar.TypeDir
		}
		var block bytes.Buffer
		block.Write(make([]byte, padding))
		if err := tar.NewWriter(&block).WriteHeader(hdr); err != nil {
			tb.Fatal(err)
		}
		crc := zstdchunked.NewTarSplitCRC()
		var sum []byte
		if e.Size > 0 {
			fmt.Fprint(crc, e.Name)
			sum = crc.Sum(nil)
		}
		if err := tw.AddSegment(block.Bytes()); err != nil {
			tb.Fatal(err)
		}
		if err := tw.AddFile(hdr.Name, e.Size, sum); err != nil {
			tb.Fatal(err)
		}
		padding = -e.Size & (512 - 1)
	}
	if err := tw.AddSegment(make([]byte, padding+1024)); err != nil {
		tb.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	js, err := zstdchunked.Marshal(index, tw.Digest())
	if err != nil {
		tb.Fatal(err)
	}
	compressedTOC, err = zstdchunked.CompressFrame(js, 10)
	if err != nil {
		tb.Fatal(err)
	}
	_, uncompressed := tw.Size()
	f = toc.Footer{
		Format:                     toc.FormatZstdChunked,
		TOCOffset:                  dataEnd + zstdchunked.SkippableFrameHeaderSize,
		TOCLength:                  int64(len(compressedTOC)),
		TOCUncompressedLength:      int64(len(js)),
		TarSplitLength:             int64(split.Len()),
		TarSplitUncompressedLength: uncompressed,
	}
	f.TarSplitOffset = f.TOCOffset + f.TOCLength + zstdchunked.SkippableFrameHeaderSize
	return compressedTOC, split.Bytes(), tw.Digest(), f
}

// BenchmarkDecodeZstdChunked decodes the TOC of a layer the size of the
// Go toolchain: decompression, JSON and validation.
func BenchmarkDecodeZstdChunked(b *testing.B) {
	compressed, _, _, f := syntheticZstdChunked(b, 15000)
	b.SetBytes(f.TOCUncompressedLength)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := zstdchunked.Decode(compressed, f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckTarSplit checks the tar-split of a layer the size of the
// Go toolchain against its TOC, as a reader opening it does: digest,
// decompression, records, tar headers and the comparison.
func BenchmarkCheckTarSplit(b *testing.B) {
	compressed, split, want, f := syntheticZstdChunked(b, 15000)
	index, _, err := zstdchunked.Decode(compressed, f)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(f.TarSplitUncompressedLength)
	b.ReportAllocs()
	for b.Loop() {
		r, err := zstdchunked.NewTarSplitReader(split, want)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := zstdchunked.CheckTarSplit(r, index); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}
