package toc

import (
	"bytes"
	"errors"
	"io/fs"
	"testing"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/.

// fuzzLimits are the decoding limits of the fuzz targets that compare two
// decoders: low enough that small inputs reach every limit, high enough
// for the golden TOCs.
var fuzzLimits = []DecodeOption{
	WithMaxEntries(64), WithMaxTOCSize(1 << 20),
	WithMaxNameLength(256), WithMaxPathDepth(16), WithMaxImpliedDirs(16), WithMaxNameBytes(4 << 10),
}

func FuzzParseFooter(f *testing.F) {
	f.Fuzz(func(t *testing.T, tail []byte) {
		footer, err := ParseFooter(tail)
		if err != nil {
			if !errors.Is(err, ErrInvalidFooter) {
				t.Fatalf("error %v does not wrap ErrInvalidFooter", err)
			}
			return
		}
		if footer.Size <= 0 || footer.Size > len(tail) || footer.Size > MaxFooterSize || footer.TOCOffset < 0 {
			t.Fatalf("implausible footer %+v from %d bytes", footer, len(tail))
		}
		if footer.Format != FormatEStargz || footer.Size != EStargzFooterSize {
			return
		}
		// A parsed eStargz footer encodes back to the same bytes, except for
		// the MTIME, XFL and OS header bytes, which carry no meaning.
		want := bytes.Clone(tail[len(tail)-EStargzFooterSize:])
		got := EStargzFooter(footer.TOCOffset)
		copy(want[4:10], got[4:10])
		hexDigits := want[16 : 16+hexOffsetLen]
		copy(hexDigits, bytes.ToLower(hexDigits)) // we write lower case, accept both
		if !bytes.Equal(got, want) {
			t.Fatalf("EStargzFooter(%d) = %q, parsed from %q", footer.TOCOffset, got, want)
		}
	})
}

func FuzzUnmarshalEStargz(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, tocOffset int64) {
		toc, err := UnmarshalEStargz(data, tocOffset)
		if err != nil {
			return
		}
		checkTOCInvariants(t, toc, tocOffset)
		// Whatever decodes encodes, and from then on the encoding is stable.
		js, err := MarshalEStargz(toc)
		if err != nil {
			t.Fatalf("MarshalEStargz of a decoded TOC: %v", err)
		}
		toc2, err := UnmarshalEStargz(js, tocOffset)
		if err != nil {
			t.Fatalf("decoding our own encoding: %v\n%s", err, js)
		}
		js2, err := MarshalEStargz(toc2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(js, js2) {
			t.Fatalf("encoding not stable:\n%s\n%s", js, js2)
		}
	})
}

func checkTOCInvariants(t *testing.T, toc *TOC, tocOffset int64) {
	t.Helper()
	for _, e := range toc.Entries {
		if !fs.ValidPath(e.Name) {
			t.Fatalf("entry name %q is not a valid io/fs path", e.Name)
		}
		if e.Type == TypeHardlink && !fs.ValidPath(e.LinkName) {
			t.Fatalf("hardlink target %q is not a valid io/fs path", e.LinkName)
		}
		if err := checkChunkTiling(e); e.Type == TypeReg && err != nil {
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
		js, err := ReadEStargzTOCMember(member, WithMaxTOCSize(limit))
		if err == nil && len(js) > limit {
			t.Fatalf("returned %d bytes over the %d limit", len(js), limit)
		}
	})
}
