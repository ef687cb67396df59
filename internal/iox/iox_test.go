package iox

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
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

func TestNextEntries(t *testing.T) {
	m := fstest.MapFS{"d/a": {}, "d/b": {}, "d/c": {}}
	all, err := m.ReadDir("d")
	if err != nil {
		t.Fatal(err)
	}
	pending := slices.Clone(all)
	var got []string
	for {
		batch, err := NextEntries(&pending, 2)
		if err == io.EOF {
			break
		}
		if err != nil || len(batch) == 0 || len(batch) > 2 {
			t.Fatalf("batch %v, %v", batch, err)
		}
		for _, e := range batch {
			got = append(got, e.Name())
		}
	}
	if strings.Join(got, ",") != "a,b,c" {
		t.Errorf("batches of 2 gave %v", got)
	}
	pending = slices.Clone(all)
	if rest, err := NextEntries(&pending, 0); err != nil || len(rest) != 3 || len(pending) != 0 {
		t.Errorf("n=0: %d entries, %v; %d left", len(rest), err, len(pending))
	}
	if rest, err := NextEntries(&pending, 0); err != nil || len(rest) != 0 {
		t.Errorf("n=0 at the end: %d entries, %v; want none and no error", len(rest), err)
	}
}

func TestReplaceFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := ReplaceFile(path, func(w io.Writer) error { _, err := io.WriteString(w, "one"); return err }); err != nil {
		t.Fatal(err)
	}
	failed := errors.New("write failed")
	if err := ReplaceFile(path, func(w io.Writer) error { io.WriteString(w, "tw"); return failed }); !errors.Is(err, failed) {
		t.Fatalf("ReplaceFile with a failing write: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "one" {
		t.Fatalf("after a failed replace the file holds %q (%v), want the first one", b, err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("a failed replace left its temporary file: %v", err)
	}
}
