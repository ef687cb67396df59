package estargz

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/lazylayer/lazylayer/toc"
)

// formatsExampleFooter is the example of the shared FORMATS.md fact sheet:
// the eStargz footer for tocOffset 0x1234.
const formatsExampleFooter = "1f8b08040000000000ff1a00534716003030303030303030303030303132333453544152475a010000ffff0000000000000000"

func TestEStargzFooterExample(t *testing.T) {
	got := Footer(0x1234)
	if h := hex.EncodeToString(got); h != formatsExampleFooter {
		t.Fatalf("Footer(0x1234) = %s, want %s", h, formatsExampleFooter)
	}
	if len(got) != FooterSize {
		t.Fatalf("len = %d, want %d", len(got), FooterSize)
	}
	f, err := ParseFooter(got)
	if err != nil {
		t.Fatal(err)
	}
	want := toc.Footer{Format: toc.FormatEStargz, Size: FooterSize, TOCOffset: 0x1234}
	if f != want {
		t.Fatalf("ParseFooter = %+v, want %+v", f, want)
	}
}

// stdlibGzipFooter builds a footer the way the original stargz (CRFS) did:
// an empty compress/gzip stream at NoCompression carrying extra.
func stdlibGzipFooter(extra []byte) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.NoCompression) // a valid level cannot fail
	zw.Header.Extra = extra
	zw.Header.OS = 255
	zw.Close() // writes to memory: cannot fail
	return b.Bytes()
}

func TestParseFooterLegacy(t *testing.T) {
	footer := stdlibGzipFooter(fmt.Appendf(nil, "%016xSTARGZ", 0xabcdef))
	if len(footer) != LegacyFooterSize {
		t.Fatalf("legacy footer is %d bytes, want %d", len(footer), LegacyFooterSize)
	}
	// Preceded by other blob bytes, as a reader fetching a larger tail sees it.
	tail := append(bytes.Repeat([]byte{0x5a}, 100), footer...)
	f, err := ParseFooter(tail)
	if err != nil {
		t.Fatal(err)
	}
	if want := (toc.Footer{Format: toc.FormatEStargz, Size: LegacyFooterSize, TOCOffset: 0xabcdef}); f != want {
		t.Fatalf("ParseFooter = %+v, want %+v", f, want)
	}
}

func TestParseFooterExternalTOC(t *testing.T) {
	// The reference externaltoc package's footer, built independently.
	ref := stdlibGzipFooter([]byte("SG\x11\x00STARGZEXTERNALTOC"))
	ours := ExternalTOCFooter()
	if !bytes.Equal(ref, ours) {
		t.Fatalf("ExternalTOCFooter = %x, want %x", ours, ref)
	}
	f, err := ParseFooter(append([]byte("data"), ours...))
	if err != nil {
		t.Fatal(err)
	}
	if want := (toc.Footer{Format: toc.FormatEStargz, Size: ExternalTOCFooterSize, ExternalTOC: true}); f != want {
		t.Fatalf("ParseFooter = %+v, want %+v", f, want)
	}
}

func TestParseFooterWithLongTail(t *testing.T) {
	var tail []byte
	tail = append(tail, bytes.Repeat([]byte{0}, 4096)...)
	tail = append(tail, Footer(1<<40)...)
	f, err := ParseFooter(tail)
	if err != nil || f.TOCOffset != 1<<40 {
		t.Fatalf("ParseFooter = %+v, %v", f, err)
	}
}

func TestParseFooterRejectsCorruption(t *testing.T) {
	good := Footer(0x1234)
	mutate := func(i int, b byte) []byte {
		c := bytes.Clone(good)
		c[i] = b
		return c
	}
	cases := map[string][]byte{
		"empty":            nil,
		"zeros":            make([]byte, toc.MaxFooterSize),
		"truncated":        good[1:],
		"bad ID1":          mutate(0, 0x1e),
		"bad method":       mutate(2, 7),
		"extra flags":      mutate(3, 0x0c),
		"bad XLEN":         mutate(10, 27),
		"bad subfield ID":  mutate(12, 'X'),
		"bad subfield LEN": mutate(14, 21),
		"bad magic":        mutate(37, 'X'),
		"bad hex digit":    mutate(20, 'g'),
		"sign in offset":   mutate(16, '+'),
		"nonzero CRC":      mutate(45, 1),
		"non-empty block":  mutate(39, 1),
		"offset overflow":  bytes.Replace(good, []byte("0000000000001234"), []byte("8000000000000000"), 1),
		"negative offset":  Footer(-1),
		"legacy bad hex":   stdlibGzipFooter(fmt.Appendf(nil, "%016sSTARGZ", "xyz")),
		"external bad tag": stdlibGzipFooter([]byte("SG\x11\x00STARGZEXTERNALTOX")),
	}
	for name, tail := range cases {
		if f, err := ParseFooter(tail); !errors.Is(err, toc.ErrInvalidFooter) {
			t.Errorf("%s: ParseFooter = %+v, %v; want ErrInvalidFooter", name, f, err)
		}
	}
}

// TestParseFooterTellsNoFooterFromDamage checks that a tail with no
// footer at all (a plain layer's) is told apart from a damaged footer.
func TestParseFooterTellsNoFooterFromDamage(t *testing.T) {
	var plain bytes.Buffer
	zw := gzip.NewWriter(&plain)
	zw.Write(bytes.Repeat([]byte("plain gzip layer "), 100))
	zw.Close()
	for name, tail := range map[string][]byte{"empty": nil, "zeros": make([]byte, 100), "plain gzip": plain.Bytes()} {
		if _, err := ParseFooter(tail); !errors.Is(err, toc.ErrNoFooter) || !errors.Is(err, toc.ErrInvalidFooter) {
			t.Errorf("%s: error %v, want ErrNoFooter and ErrInvalidFooter", name, err)
		}
	}
	damaged := Footer(0x1234)
	damaged[20] = 'g' // not a hex digit
	if _, err := ParseFooter(damaged); !errors.Is(err, toc.ErrInvalidFooter) || errors.Is(err, toc.ErrNoFooter) {
		t.Errorf("damaged footer: error %v, want ErrInvalidFooter only", err)
	}
}

func TestMaxFooterSizeCoversEStargz(t *testing.T) {
	for _, n := range []int{FooterSize, LegacyFooterSize, ExternalTOCFooterSize} {
		if n > toc.MaxFooterSize {
			t.Errorf("footer size %d exceeds MaxFooterSize %d", n, toc.MaxFooterSize)
		}
	}
}
