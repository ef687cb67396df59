package estargz

import (
	"bytes"
	"errors"
	"io/fs"
	"testing"

	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/toc"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/.

// fuzzLimits are the decoding limits of the fuzz targets that compare two
// decoders: low enough that small inputs reach every limit, high enough
// for the golden TOCs.
var fuzzLimits = []toc.DecodeOption{
	toc.WithMaxEntries(64), toc.WithMaxTOCSize(1 << 20),
	toc.WithMaxNameLength(256), toc.WithMaxPathDepth(16), toc.WithMaxImpliedDirs(16), toc.WithMaxNameBytes(4 << 10),
}

func FuzzParseFooter(f *testing.F) {
	f.Fuzz(func(t *testing.T, tail []byte) {
		footer, err := ParseFooter(tail)
		if err != nil {
			if !errors.Is(err, toc.ErrInvalidFooter) {
				t.Fatalf("error %v does not wrap ErrInvalidFooter", err)
			}
			return
		}
		if footer.Size <= 0 || footer.Size > len(tail) || footer.Size > toc.MaxFooterSize || footer.TOCOffset < 0 {
			t.Fatalf("implausible footer %+v from %d bytes", footer, len(tail))
		}
		if footer.Format != toc.FormatEStargz || footer.Size != FooterSize {
			return
		}
		// A parsed eStargz footer encodes back to the same bytes, except for
		// the MTIME, XFL and OS header bytes, which carry no meaning.
		want := bytes.Clone(tail[len(tail)-FooterSize:])
		got := Footer(footer.TOCOffset)
		copy(want[4:10], got[4:10])
		hexDigits := want[16 : 16+hexOffsetLen]
		copy(hexDigits, bytes.ToLower(hexDigits)) // we write lower case, accept both
		if !bytes.Equal(got, want) {
			t.Fatalf("Footer(%d) = %q, parsed from %q", footer.TOCOffset, got, want)
		}
	})
}

func FuzzUnmarshalEStargz(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, tocOffset int64) {
		index, err := Unmarshal(data, tocOffset)
		if err != nil {
			return
		}
		checkTOCInvariants(t, index, tocOffset)
		// Whatever decodes encodes, and from then on the encoding is stable.
		js, err := Marshal(index)
		if err != nil {
			t.Fatalf("Marshal of a decoded TOC: %v", err)
		}
		toc2, err := Unmarshal(js, tocOffset)
		if err != nil {
			t.Fatalf("decoding our own encoding: %v\n%s", err, js)
		}
		js2, err := Marshal(toc2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(js, js2) {
			t.Fatalf("encoding not stable:\n%s\n%s", js, js2)
		}
	})
}

func checkTOCInvariants(t *testing.T, index *toc.TOC, tocOffset int64) {
	t.Helper()
	for _, e := range index.Entries {
		if !fs.ValidPath(e.Name) {
			t.Fatalf("entry name %q is not a valid io/fs path", e.Name)
		}
		if e.Type == toc.TypeHardlink && !fs.ValidPath(e.LinkName) {
			t.Fatalf("hardlink target %q is not a valid io/fs path", e.LinkName)
		}
		if err := tocjson.CheckChunkTiling(e); e.Type == toc.TypeReg && err != nil {
			t.Fatal(err)
		}
		for _, c := range e.Chunks {
			if c.FrameOffset < 0 || c.FrameOffset >= c.FrameEnd || c.FrameEnd > tocOffset || c.InnerOffset < 0 {
				t.Fatalf("entry %q: chunk frame out of range: %+v (tocOffset %d)", e.Name, c, tocOffset)
			}
		}
	}
}

func FuzzReadEStargzTOCMember(f *testing.F) {
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, member []byte) {
		js, err := ReadTOCMember(member, toc.WithMaxTOCSize(limit))
		if err == nil && len(js) > limit {
			t.Fatalf("returned %d bytes over the %d limit", len(js), limit)
		}
	})
}
