package toc

import (
	"errors"
	"testing"
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
