package snapshotter

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/writer"
	"golang.org/x/sys/unix"
)

// needFUSE skips a test that cannot mount FUSE file systems here.
func needFUSE(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting FUSE file systems needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}
}

// testLayer builds an eStargz layer of entries and opens it lazily.
func testLayer(t *testing.T, entries []*tar.Header, contents map[string]string) *reader.Layer {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, h := range entries {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(contents[h.Name]))
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1700000000, 0)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(contents[h.Name]))
		}
	}
	tw.Close()
	var blob bytes.Buffer
	res, err := writer.Build(context.Background(), &blob, &tb)
	if err != nil {
		t.Fatal(err)
	}
	l, err := reader.Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob.Bytes()), int64(blob.Len())),
		reader.WithAnnotations(res.Annotations))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// mountTest mounts l in a temporary directory until the test ends.
func mountTest(t *testing.T, l *reader.Layer) string {
	t.Helper()
	dir := t.TempDir()
	server, err := mountLayer(dir, l, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := server.Unmount(); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
		server.Wait()
	})
	return dir
}

func TestLayerFS(t *testing.T) {
	needFUSE(t)
	big := string(bytes.Repeat([]byte("0123456789abcdef"), 300000)) // several chunks
	l := testLayer(t, []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "bin/tool", Typeflag: tar.TypeReg, Mode: 0o4755, Uid: 12, Gid: 34},
		{Name: "bin/link", Typeflag: tar.TypeLink, Linkname: "bin/tool"},
		{Name: "bin/sym", Typeflag: tar.TypeSymlink, Linkname: "../data/big"},
		{Name: "data/big", Typeflag: tar.TypeReg, Mode: 0o644, PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v"}},
		{Name: "data/.wh.gone", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "opaque/", Typeflag: tar.TypeDir, Mode: 0o700},
		{Name: "opaque/.wh..wh..opq", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
	}, map[string]string{"bin/tool": "#!/bin/sh\necho hi\n", "data/big": big})
	dir := mountTest(t, l)

	got, err := os.ReadFile(filepath.Join(dir, "bin/tool"))
	if err != nil || string(got) != "#!/bin/sh\necho hi\n" {
		t.Errorf("bin/tool: %q, %v", got, err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "bin/sym")); err != nil || string(got) != big {
		t.Errorf("bin/sym: %d bytes, %v; want data/big's %d", len(got), err, len(big))
	}
	var st, lst unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, "bin/tool"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != syscall.S_IFREG|0o4755 || st.Uid != 12 || st.Gid != 34 || st.Mtim.Sec != 1700000000 {
		t.Errorf("bin/tool: mode %o uid %d gid %d mtime %d", st.Mode, st.Uid, st.Gid, st.Mtim.Sec)
	}
	if err := unix.Stat(filepath.Join(dir, "bin/link"), &lst); err != nil || lst.Ino != st.Ino {
		t.Errorf("hard link: inode %d, %v; want its target's %d", lst.Ino, err, st.Ino)
	}
	if target, err := os.Readlink(filepath.Join(dir, "bin/sym")); err != nil || target != "../data/big" {
		t.Errorf("readlink: %q, %v", target, err)
	}
	buf := make([]byte, 16)
	if n, err := unix.Getxattr(filepath.Join(dir, "data/big"), "user.k", buf); err != nil || string(buf[:n]) != "v" {
		t.Errorf("xattr user.k: %q, %v", buf[:n], err)
	}
	// Whiteouts in overlayfs's spelling.
	if err := unix.Lstat(filepath.Join(dir, "data/gone"), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout data/gone: mode %o rdev %d, %v; want a 0/0 character device", st.Mode, st.Rdev, err)
	}
	if n, err := unix.Getxattr(filepath.Join(dir, "opaque"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque dir: %q, %v", buf[:n], err)
	}
	names := func(d string) []string {
		des, err := os.ReadDir(filepath.Join(dir, d))
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, de := range des {
			s = append(s, de.Name())
		}
		return s
	}
	if got := names("data"); len(got) != 2 || got[0] != "big" || got[1] != "gone" {
		t.Errorf("data lists %q, want big and gone", got)
	}
	if got := names("opaque"); len(got) != 0 {
		t.Errorf("opaque lists %q, want nothing", got)
	}
	if err := unix.Stat(filepath.Join(dir, "dev/null"), &st); err != nil || st.Mode != syscall.S_IFCHR|0o666 || st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("dev/null: mode %o rdev %x, %v", st.Mode, st.Rdev, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/tool"), nil, 0); err == nil {
		t.Error("writing a file of a layer succeeded")
	}
}

// TestLayerFSWithoutXattrs: a layer with no extended attribute and no
// opaque directory has the kernel answer attribute lookups itself, without
// asking the snapshotter.
func TestLayerFSWithoutXattrs(t *testing.T) {
	needFUSE(t)
	l := testLayer(t, []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "bin/tool", Typeflag: tar.TypeReg, Mode: 0o755},
	}, map[string]string{"bin/tool": "#!/bin/sh\n"})
	dir := mountTest(t, l)
	for _, name := range []string{"bin", "bin/tool"} {
		_, err := unix.Getxattr(filepath.Join(dir, name), "trusted.overlay.opaque", make([]byte, 16))
		if !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("getxattr %s: %v, want EOPNOTSUPP from the kernel", name, err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(dir, "bin/tool")); err != nil || string(got) != "#!/bin/sh\n" {
		t.Errorf("bin/tool: %q, %v", got, err)
	}
}
