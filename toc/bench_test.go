package toc

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
)

// syntheticTOC returns a TOC of about n entries shaped like a large layer:
// a directory every 20 files, most files one chunk, every tenth file three.
func syntheticTOC(n int) (toc *TOC, tocOffset int64) {
	toc = &TOC{Format: FormatEStargz, ChunkSize: 4 << 20}
	mt := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var offset int64 = 100
	var dir string
	for i := 0; len(toc.Entries) < n; i++ {
		if i%20 == 0 {
			dir = fmt.Sprintf("usr/lib/pkg%05d", i/20)
			toc.Entries = append(toc.Entries, &Entry{Name: dir, Type: TypeDir, Mode: 0o755, ModTime: mt, UserName: "root", GroupName: "root"})
		}
		name := fmt.Sprintf("%s/file%05d.so", dir, i)
		nChunks := 1
		if i%10 == 0 {
			nChunks = 3
		}
		e := &Entry{Name: name, Type: TypeReg, Mode: 0o644, ModTime: mt, UserName: "root", GroupName: "root",
			Digest: digest.FromString(name)}
		for c := range nChunks {
			size := int64(4 << 20)
			if c == nChunks-1 {
				size = 12345
			}
			e.Chunks = append(e.Chunks, Chunk{Offset: e.Size, Size: size, Digest: digest.FromString(fmt.Sprint(name, c)), FrameOffset: offset})
			e.Size += size
			offset += size / 3
		}
		toc.Entries = append(toc.Entries, e)
	}
	return toc, offset
}

func BenchmarkUnmarshalEStargz(b *testing.B) {
	toc, tocOffset := syntheticTOC(50000)
	js, err := MarshalEStargz(toc)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(js)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnmarshalEStargz(js, tocOffset); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalEStargz(b *testing.B) {
	toc, _ := syntheticTOC(50000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MarshalEStargz(toc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadEStargzTOCMember(b *testing.B) {
	toc, _ := syntheticTOC(50000)
	js, err := MarshalEStargz(toc)
	if err != nil {
		b.Fatal(err)
	}
	var member bytes.Buffer
	if err := WriteEStargzTOCMember(&member, js, gzip.BestCompression); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(js)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadEStargzTOCMember(member.Bytes()); err != nil {
			b.Fatal(err)
		}
	}
}
