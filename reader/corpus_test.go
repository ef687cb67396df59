package reader

import (
	"archive/tar"
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// corpusTar returns a tar of n regular files and their contents, for
// tests that read a real layer through a real stack. Sizes run from empty
// to several times maxSize/4, so that at small chunk sizes files span one
// chunk, a few or many; half the files are text, half incompressible.
func corpusTar(t testing.TB, n int, maxSize int, seed uint64) ([]byte, map[string][]byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	files := make(map[string][]byte, n)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range n {
		name := fmt.Sprintf("d%02d/f%04d", i%7, i)
		size := rng.IntN(maxSize/4 + 1)
		if i%5 == 0 {
			size = rng.IntN(maxSize + 1)
		}
		var content []byte
		if i%2 == 0 {
			content = pseudoRandom(size, byte(i))
		} else {
			content = bytes.Repeat([]byte(fmt.Sprintf("line %d of %s\n", i, name)), size/20+1)[:size]
		}
		files[name] = content
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(size), ModTime: modTime}); err != nil {
			t.Fatal(err)
		}
		tw.Write(content)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), files
}

// sortedNames returns the keys of files in order, so that tests pick
// files deterministically.
func sortedNames(files map[string][]byte) []string {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// checkAllFiles reads every file of files through l and compares it.
func checkAllFiles(t *testing.T, l *Layer, files map[string][]byte) {
	t.Helper()
	for _, name := range sortedNames(files) {
		got, err := l.ReadFile(name)
		if err != nil {
			t.Errorf("ReadFile(%q): %v", name, err)
			continue
		}
		if !bytes.Equal(got, files[name]) {
			t.Errorf("ReadFile(%q): %d bytes differ from the %d written", name, len(got), len(files[name]))
		}
	}
}
