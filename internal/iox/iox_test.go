package iox

import (
	"io"
	"strings"
	"testing"
)

func TestCountingWriter(t *testing.T) {
	c := CountingWriter{W: io.Discard}
	c.Write([]byte("abc"))
	c.Write(make([]byte, 5))
	if c.N != 8 {
		t.Errorf("N = %d, want 8", c.N)
	}
}

func TestCountingReader(t *testing.T) {
	c := CountingReader{R: strings.NewReader("abcdefgh")}
	io.ReadAll(&c)
	if c.N != 8 {
		t.Errorf("N = %d, want 8", c.N)
	}
}

func TestAllZero(t *testing.T) {
	if !AllZero(nil) || !AllZero(make([]byte, 600)) || AllZero([]byte{0, 0, 1}) {
		t.Error("AllZero disagrees with its definition")
	}
}
