package toc

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/internal/tartest"
)

func TestReadTarSplitHeadersThenCheck(t *testing.T) {
	g := loadZstdChunkedGolden(t, "zstdchunked-storage")
	f, err := ParseFooter(g.blob[len(g.blob)-MaxFooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	index, tarSplitDigest, err := DecodeZstdChunked(g.blob[f.TOCOffset:f.TOCOffset+f.TOCLength], f)
	if err != nil {
		t.Fatal(err)
	}
	split := g.blob[f.TarSplitOffset : f.TarSplitOffset+f.TarSplitLength]
	headers := func(max int) error {
		r, err := NewTarSplitReader(split, tarSplitDigest)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		hdrs, err := ReadTarSplitHeaders(r, max)
		if err != nil {
			return err
		}
		if size := hdrs.TarSize(); size != int64(len(g.tar)) {
			t.Errorf("tar-split describes %d bytes, the tar has %d", size, len(g.tar))
		}
		if err := hdrs.Check(index); err != nil {
			t.Errorf("headers of the reference tar-split disagree with its TOC: %v", err)
		}
		short := &TOC{Entries: index.Entries[:len(index.Entries)-1]}
		if err := hdrs.Check(short); !errors.Is(err, ErrTarSplitMismatch) {
			t.Errorf("TOC missing an entry: error %v, want ErrTarSplitMismatch", err)
		}
		long := &TOC{Entries: append(index.Entries[:len(index.Entries):len(index.Entries)], index.Entries[0])}
		if err := hdrs.Check(long); !errors.Is(err, ErrTarSplitMismatch) {
			t.Errorf("TOC with an extra entry: error %v, want ErrTarSplitMismatch", err)
		}
		return nil
	}
	if err := headers(0); err != nil {
		t.Fatal(err)
	}
	if err := headers(1); !errors.Is(err, ErrTOCTooLarge) {
		t.Errorf("more headers than allowed: error %v, want ErrTOCTooLarge", err)
	}
}

// TestCheckTarSplitRefusesSparseFiles checks that a tar-split describing
// a PAX sparse file, as containers/storage writes one, is refused: its
// file record stands for the expanded contents, which the TOC describes,
// while the tar it rebuilds holds the sparse map and the stored data, so
// tar readers would extract something else.
func TestCheckTarSplitRefusesSparseFiles(t *testing.T) {
	const realSize = 1 << 20
	raw, err := tartest.SparseTar("s", realSize, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	headerEnd := len(raw) - 3*512 // the data block and the end of the archive

	expanded := make([]byte, realSize)
	copy(expanded, "hello")
	crc := NewTarSplitCRC()
	crc.Write(expanded)
	var compressed bytes.Buffer
	w, err := NewTarSplitWriter(&compressed, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.AddSegment(raw[:headerEnd])
	w.AddFile("s", realSize, crc.Sum(nil))
	w.AddSegment(raw[headerEnd+5:])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewTarSplitReader(compressed.Bytes(), w.Digest())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	index := &TOC{Entries: []*Entry{{Name: "s", Type: TypeReg, Size: realSize, Mode: 0o644}}}
	if _, err := CheckTarSplit(r, index); !errors.Is(err, ErrTarSplitMismatch) || !strings.Contains(err.Error(), `"s" is a sparse file`) {
		t.Errorf("CheckTarSplit: %v, want ErrTarSplitMismatch naming the sparse file", err)
	}
}
