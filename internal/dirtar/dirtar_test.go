package dirtar

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func makeTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range map[string]string{
		"b/file.txt":  "bravo",
		"a/empty":     "",
		"a/deep/data": "0123456789",
	} {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("deep/data", filepath.Join(root, "a", "link")); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	if err := os.Chtimes(filepath.Join(root, "b", "file.txt"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestWriteDeterministic(t *testing.T) {
	root := makeTree(t)
	var a, b bytes.Buffer
	st, err := Write(&a, root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(&b, root); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two tars of the same tree differ")
	}
	if want := (Stats{Files: 3, Bytes: 15}); st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
}

func TestWriteEntries(t *testing.T) {
	root := makeTree(t)
	var buf bytes.Buffer
	if _, err := Write(&buf, root); err != nil {
		t.Fatal(err)
	}
	var names []string
	forEach(t, &buf, func(h *tar.Header, tr io.Reader) {
		names = append(names, h.Name)
		switch h.Name {
		case "a/link":
			if h.Typeflag != tar.TypeSymlink || h.Linkname != "deep/data" {
				t.Errorf("a/link: type %c, target %q", h.Typeflag, h.Linkname)
			}
		case "b/file.txt":
			if !h.ModTime.Equal(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)) || h.Uname != "" || h.Gname != "" {
				t.Errorf("b/file.txt: mtime %v, owner %q:%q", h.ModTime, h.Uname, h.Gname)
			}
			if body, _ := io.ReadAll(tr); string(body) != "bravo" {
				t.Errorf("b/file.txt holds %q", body)
			}
		}
	})
	want := []string{"a/", "a/deep/", "a/deep/data", "a/empty", "a/link", "b/", "b/file.txt"}
	if !slices.Equal(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
}

func TestWriteMissingDir(t *testing.T) {
	if _, err := Write(io.Discard, filepath.Join(t.TempDir(), "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Write of a missing directory: %v, want ErrNotExist", err)
	}
}

func TestWriteTrees(t *testing.T) {
	root := makeTree(t)
	var buf bytes.Buffer
	st, err := WriteTrees(&buf, filepath.Join(root, "a", "deep"), filepath.Join(root, "b", "file.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Stats{Files: 2, Bytes: 15}); st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	var names []string
	forEach(t, &buf, func(h *tar.Header, _ io.Reader) { names = append(names, h.Name) })
	prefix := filepath.ToSlash(root)[1:]
	want := []string{prefix + "/a/deep/", prefix + "/a/deep/data", prefix + "/b/file.txt"}
	if !slices.Equal(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
	if _, err := WriteTrees(io.Discard, "relative"); err == nil {
		t.Error("WriteTrees of a relative path: no error")
	}
}

// forEach calls f with each entry of the tar stream r and its body.
func forEach(t *testing.T, r io.Reader, f func(*tar.Header, io.Reader)) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		f(h, tr)
	}
}
