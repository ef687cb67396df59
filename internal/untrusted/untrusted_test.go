package untrusted

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestShort(t *testing.T) {
	if got := Short("etc/passwd"); got != "etc/passwd" {
		t.Errorf("Short of a short string = %q", got)
	}
	long := strings.Repeat("a", 1<<20)
	got := Short(long)
	if len(got) > MaxQuoted+32 || !strings.HasSuffix(got, "...(1048576 bytes)") {
		t.Errorf("Short of 1 MiB = %q", got)
	}
	// A cut never splits a rune.
	multi := strings.Repeat("é", MaxQuoted)
	if got := Short(multi); !utf8.ValidString(got) {
		t.Errorf("Short split a rune: %q", got)
	}
}

func ExampleShort() {
	name := strings.Repeat("x/", 1000)
	err := fmt.Errorf("toc: entry %q: too deep", Short(name))
	fmt.Println(len(err.Error()) < 200)
	// Output: true
}

func TestErr(t *testing.T) {
	if Err(nil) != nil {
		t.Error("Err(nil) is not nil")
	}
	base := errors.New(strings.Repeat("x", 1<<20))
	err := fmt.Errorf("decoding: %w", Err(base))
	if len(err.Error()) > MaxQuoted+64 || !errors.Is(err, base) {
		t.Errorf("Err of a 1 MiB error: %d bytes, wraps it: %v", len(err.Error()), errors.Is(err, base))
	}
}
