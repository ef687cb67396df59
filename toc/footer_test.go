package toc

import (
	"encoding/hex"
	"errors"
	"testing"
)

// formatsExampleFooter is the example of /work/shared/FORMATS.md: the
// eStargz footer for tocOffset 0x1234.
const formatsExampleFooter = "1f8b08040000000000ff1a00534716003030303030303030303030303132333453544152475a010000ffff0000000000000000"

func TestEStargzFooterExample(t *testing.T) {
	got := EStargzFooter(0x1234)
	if h := hex.EncodeToString(got); h != formatsExampleFooter {
		t.Fatalf("EStargzFooter(0x1234) = %s, want %s", h, formatsExampleFooter)
	}
	if len(got) != EStargzFooterSize {
		t.Fatalf("len = %d, want %d", len(got), EStargzFooterSize)
	}
	f, err := ParseFooter(got)
	if err != nil {
		t.Fatal(err)
	}
	want := Footer{Format: FormatEStargz, Size: EStargzFooterSize, TOCOffset: 0x1234}
	if f != want {
		t.Fatalf("ParseFooter = %+v, want %+v", f, want)
	}
}

func TestParseFooterRejectsGarbage(t *testing.T) {
	_, err := ParseFooter(make([]byte, MaxFooterSize))
	if !errors.Is(err, ErrInvalidFooter) {
		t.Fatalf("err = %v, want ErrInvalidFooter", err)
	}
}
