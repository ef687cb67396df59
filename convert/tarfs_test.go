package convert

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"testing"
	"testing/fstest"
)

func testTar(t *testing.T, entries ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(h.Name))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func indexed(t *testing.T, b []byte, budget *fileBudget) *tarFS {
	t.Helper()
	var spool bytes.Buffer
	fsys, err := indexTar(bytes.NewReader(b), &spool, bytes.NewReader(b), budget)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(spool.Bytes(), b) {
		t.Fatal("spool is not the tar")
	}
	return fsys
}

// TestTarFS checks the view against io/fs's rules, and what a tar
// makes of names: cleaned, the later of two entries winning, parents
// implied, hardlinks reading their target.
func TestTarFS(t *testing.T) {
	reg := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644} }
	b := testTar(t,
		&tar.Header{Name: "./usr/", Typeflag: tar.TypeDir, Mode: 0o755},
		reg("./usr/bin/tool"),
		reg("/etc/../etc/hosts"),
		reg("a/b/c/d"),
		reg("a/b.txt"),
		reg("twice"),
		&tar.Header{Name: "twice", Typeflag: tar.TypeDir, Mode: 0o700},
		&tar.Header{Name: "hard", Typeflag: tar.TypeLink, Linkname: "./usr/bin/tool"},
		&tar.Header{Name: "dangling", Typeflag: tar.TypeLink, Linkname: "nothing"},
		reg(".wh.gone"),
	)
	fsys := indexed(t, b, &fileBudget{files: 100, nameBytes: 1000})
	if err := fstest.TestFS(fsys, "usr/bin/tool", "etc/hosts", "a/b/c/d", "a/b.txt", "twice", "hard", ".wh.gone"); err != nil {
		t.Fatal(err)
	}
	if got, err := fs.ReadFile(fsys, "hard"); err != nil || string(got) != "./usr/bin/tool" {
		t.Errorf("hardlink reads %q, %v", got, err)
	}
	if fi, err := fs.Stat(fsys, "twice"); err != nil || !fi.IsDir() {
		t.Errorf("twice: %v, %v; want the later entry, a directory", fi, err)
	}
	if _, err := fs.Stat(fsys, "dangling"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dangling hardlink: %v", err)
	}
}

func TestTarFSSymlinks(t *testing.T) {
	b := testTar(t,
		&tar.Header{Name: "bin/sh", Typeflag: tar.TypeReg, Mode: 0o755},
		&tar.Header{Name: "bin/bash", Typeflag: tar.TypeSymlink, Linkname: "sh"},
	)
	fsys := indexed(t, b, &fileBudget{files: 100, nameBytes: 1000})
	if target, err := fs.ReadLink(fsys, "bin/bash"); err != nil || target != "sh" {
		t.Errorf("ReadLink: %q, %v", target, err)
	}
	if fi, err := fs.Lstat(fsys, "bin/bash"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat: %v, %v", fi, err)
	}
	if _, err := fs.ReadLink(fsys, "bin/sh"); err == nil {
		t.Error("ReadLink of a file succeeded")
	}
}

func TestTarFSBudget(t *testing.T) {
	b := testTar(t, &tar.Header{Name: "a/b/c", Typeflag: tar.TypeReg})
	for _, fb := range []*fileBudget{{files: 2, nameBytes: 100}, {files: 100, nameBytes: 6}} {
		var spool bytes.Buffer
		if _, err := indexTar(bytes.NewReader(b), &spool, bytes.NewReader(b), fb); !errors.Is(err, ErrTooLarge) {
			t.Errorf("budget %+v: %v, want ErrTooLarge", fb, err)
		}
	}
	indexed(t, b, &fileBudget{files: 3, nameBytes: 9})
}
