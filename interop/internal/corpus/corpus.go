// Package corpus builds the tar inputs that the interop tests and
// benchmarks share: tars of real trees such as the Go toolchain (large,
// realistic layers) and a small generated tree holding every kind of tar
// entry.
package corpus

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lazylayer/lazylayer/internal/tartest"
)

// trees holds the tars TreeTar built, by root, and the directory they
// are in.
var trees struct {
	mu   sync.Mutex
	dir  string
	tars map[string]*treeTar
}

type treeTar struct {
	once sync.Once
	n    int // the tar is the n-th built
	path string
	size int64
	err  error
}

// TreeTar returns the path and size of a tar of the tree under root (see
// TarDir). It is built once per process and root into a temporary
// directory; call Cleanup (from TestMain) to remove it.
func TreeTar(tb testing.TB, root string) (path string, size int64) {
	tb.Helper()
	trees.mu.Lock()
	if trees.tars == nil {
		trees.tars = make(map[string]*treeTar)
	}
	t := trees.tars[root]
	if t == nil {
		t = &treeTar{n: len(trees.tars)}
		trees.tars[root] = t
	}
	trees.mu.Unlock()
	t.once.Do(func() { t.path, t.size, t.err = buildTreeTar(root, t.n) })
	if t.err != nil {
		tb.Fatalf("corpus: tar of %s: %v", root, t.err)
	}
	return t.path, t.size
}

// GorootTar returns the path and size of a tar of the tree that
// `go env GOROOT` names (see TreeTar).
func GorootTar(tb testing.TB) (path string, size int64) {
	tb.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		tb.Fatalf("corpus: go env GOROOT: %v", err)
	}
	return TreeTar(tb, strings.TrimSpace(string(out)))
}

var gorootBytes struct {
	once sync.Once
	data []byte
	err  error
}

// GorootBytes returns the contents of the GorootTar, read into memory once
// per process and shared by every caller, which must not modify it.
func GorootBytes(tb testing.TB) []byte {
	tb.Helper()
	path, _ := GorootTar(tb)
	gorootBytes.once.Do(func() {
		gorootBytes.data, gorootBytes.err = os.ReadFile(path)
	})
	if gorootBytes.err != nil {
		tb.Fatalf("corpus: GOROOT tar: %v", gorootBytes.err)
	}
	return gorootBytes.data
}

// Cleanup removes the files TreeTar built. Call it once, after m.Run.
func Cleanup() {
	trees.mu.Lock()
	defer trees.mu.Unlock()
	if trees.dir != "" {
		os.RemoveAll(trees.dir)
	}
}

// buildTreeTar tars root into the n-th file of the corpus directory.
func buildTreeTar(root string, n int) (string, int64, error) {
	trees.mu.Lock()
	if trees.dir == "" {
		dir, err := os.MkdirTemp("", "lazylayer-corpus-")
		if err != nil {
			trees.mu.Unlock()
			return "", 0, err
		}
		trees.dir = dir
	}
	dir := trees.dir
	trees.mu.Unlock()
	path := filepath.Join(dir, fmt.Sprintf("tree%d.tar", n))
	f, err := os.Create(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	if err := TarDir(f, root); err != nil {
		return "", 0, fmt.Errorf("tar %s: %w", root, err)
	}
	if err := f.Close(); err != nil {
		return "", 0, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", 0, err
	}
	return path, st.Size(), nil
}

// TarDir writes the tree under root as a tar stream: directories, regular
// files and symlinks in lexical walk order, named relative to root.
func TarDir(w io.Writer, root string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		} else if !info.Mode().IsRegular() && !info.IsDir() {
			return nil // sockets and the like have no tar form
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// Entry is one entry of the generated tree: its tar header and, for a
// regular file, its content.
type Entry = tartest.Entry

// Kinds returns the generated tree that holds every kind of entry:
// tartest.Kinds, or with -short the same tree with smaller large files
// (tartest.SmallKinds), since under -short (and -race) the entry kinds are
// the point, not the volume.
func Kinds() []Entry {
	if testing.Short() {
		return tartest.SmallKinds()
	}
	return tartest.Kinds()
}

var kindsTar struct {
	once sync.Once
	tar  []byte
	err  error
}

// KindsTar returns the tree of Kinds as a tar stream. It is encoded once
// per process; each call returns a fresh copy.
func KindsTar(tb testing.TB) []byte {
	tb.Helper()
	kindsTar.once.Do(func() {
		kindsTar.tar, kindsTar.err = tartest.WriteTar(Kinds())
	})
	if kindsTar.err != nil {
		tb.Fatalf("corpus: %v", kindsTar.err)
	}
	return bytes.Clone(kindsTar.tar)
}

// WriteTar encodes entries as a tar stream, each header in its own Format.
func WriteTar(entries []Entry) ([]byte, error) { return tartest.WriteTar(entries) }

// SparseTar returns a tar holding one GNU PAX sparse file: see
// tartest.SparseTar.
func SparseTar(name string, size int64, data []byte) ([]byte, error) {
	return tartest.SparseTar(name, size, data)
}
