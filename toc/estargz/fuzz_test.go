package estargz

import (
	"bytes"
	"errors"
	"testing"

	"github.com/lazylayer/lazylayer/internal/toctest"
	"github.com/lazylayer/lazylayer/toc"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/.

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
		toctest.CheckTOCInvariants(t, index, tocOffset)
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

func FuzzReadEStargzTOCMember(f *testing.F) {
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, member []byte) {
		js, err := ReadTOCMember(member, toc.WithMaxTOCSize(limit))
		if err == nil && len(js) > limit {
			t.Fatalf("returned %d bytes over the %d limit", len(js), limit)
		}
	})
}
