package overlay

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/lazylayer/lazylayer/toc"
	"github.com/stretchr/testify/require"
)

func link(target string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
}

func file(data string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(data), Mode: 0o644} }

func dir() *fstest.MapFile { return &fstest.MapFile{Mode: fs.ModeDir | 0o755} }

// testImage is three layers exercising every overlay rule.
func testImage() *FS {
	base := fstest.MapFS{
		"etc/os-release":    file("base"),
		"etc/hostname":      file("base"),
		"etc/removed":       file("base"),
		"opt/app/old.txt":   file("base"),
		"opt/app/keep.txt":  file("base"),
		"var/dir/inner.txt": file("base"),
		"usr/lib/libx.so":   file("libx"),
		"lib":               link("usr/lib"),
		"gone":              file("base"),
	}
	middle := fstest.MapFS{
		"etc/os-release":       file("middle"),
		"etc/.wh.removed":      file(""),
		"opt/app/.wh..wh..opq": file(""),
		"opt/app/new.txt":      file("middle"),
		"var/dir":              file("now a file"),
		"usr/bin/tool":         link("../lib/libx.so"),
		"usr/bin/abs":          link("/lib/libx.so"),
		"usr/bin/escape":       link("../../../../../../etc/hostname"),
		"usr/bin/dot":          link("."),
		"loop/a":               link("b"),
		"loop/b":               link("a"),
		"loop/self":            link("self/x"),
	}
	top := fstest.MapFS{
		"etc/os-release": file("top"),
		"etc/removed":    file("top again"),
		"usr/lib":        dir(),
		".wh.gone":       file(""),
	}
	return New(base, middle, top)
}

func TestUpperWinsAndWhiteouts(t *testing.T) {
	img := testImage()
	for name, want := range map[string]string{
		"etc/os-release":   "top",
		"etc/hostname":     "base",
		"etc/removed":      "top again", // re-created above the whiteout
		"opt/app/new.txt":  "middle",
		"var/dir":          "now a file",
		"usr/lib/libx.so":  "libx",
		"opt/app/keep.txt": "",
	} {
		data, err := fs.ReadFile(img, name)
		if want == "" {
			require.ErrorIs(t, err, fs.ErrNotExist, "%s is under an opaque directory", name)
			continue
		}
		require.NoError(t, err, name)
		require.Equal(t, want, string(data), name)
	}
	for _, hidden := range []string{"opt/app/old.txt", "etc/.wh.removed", "opt/app/.wh..wh..opq", "gone"} {
		_, err := img.Stat(hidden)
		require.ErrorIs(t, err, fs.ErrNotExist, hidden)
	}
	_, err := img.Stat("var/dir/inner.txt")
	require.ErrorContains(t, err, "not a directory", "a file in an upper layer replaces the directory")

	loc, err := img.Resolve("/etc/hostname")
	require.NoError(t, err)
	require.Equal(t, 0, loc.Layer)
	loc, err = img.Resolve("var/dir")
	require.NoError(t, err)
	require.Equal(t, 1, loc.Layer)
	loc, err = img.Resolve("etc/os-release")
	require.NoError(t, err)
	require.Equal(t, 2, loc.Layer)
}

func TestReadDirMerges(t *testing.T) {
	img := testImage()
	names := func(dir string) []string {
		entries, err := fs.ReadDir(img, dir)
		require.NoError(t, err, dir)
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	require.Equal(t, []string{"hostname", "os-release", "removed"}, names("etc"))
	require.Equal(t, []string{"new.txt"}, names("opt/app"))
	require.Equal(t, []string{"etc", "lib", "loop", "opt", "usr", "var"}, names("."))
	require.Equal(t, []string{"libx.so"}, names("lib"), "through the link")

	var walked []string
	require.NoError(t, fs.WalkDir(img, "usr", func(p string, d fs.DirEntry, err error) error {
		walked = append(walked, p)
		return err
	}))
	require.Equal(t, []string{"usr", "usr/bin", "usr/bin/abs", "usr/bin/dot", "usr/bin/escape", "usr/bin/tool", "usr/lib", "usr/lib/libx.so"}, walked)

	_, err := img.ReadDir("etc/hostname")
	require.Error(t, err)
}

func TestSymlinks(t *testing.T) {
	img := testImage()
	for name, want := range map[string]string{
		"usr/bin/tool":           "usr/lib/libx.so", // relative, across layers
		"usr/bin/abs":            "usr/lib/libx.so", // absolute, through another link
		"usr/bin/escape":         "etc/hostname",    // ".." stops at the root
		"lib/libx.so":            "usr/lib/libx.so",
		"lib/../../etc/hostname": "etc/hostname", // ".." applies to the link's target
		"usr/lib/..":             "usr",
		"lib/..":                 "usr",
		"usr/bin/dot":            "usr/bin",
		"..":                     ".",
	} {
		loc, err := img.Resolve(name)
		require.NoError(t, err, name)
		require.Equal(t, want, loc.Path, name)
	}

	for _, name := range []string{"loop/a", "loop/self"} {
		_, err := img.Resolve(name)
		require.ErrorIs(t, err, ErrSymlinkLoop, name)
	}

	fi, err := img.Lstat("usr/bin/tool")
	require.NoError(t, err)
	require.Equal(t, fs.ModeSymlink, fi.Mode().Type())
	target, err := img.ReadLink("usr/bin/tool")
	require.NoError(t, err)
	require.Equal(t, "../lib/libx.so", target)
	_, err = img.ReadLink("etc/hostname")
	require.Error(t, err)

	_, err = img.Open("/etc/hostname")
	require.ErrorIs(t, err, fs.ErrInvalid, "fs.FS names are unrooted")
	_, err = img.Resolve("etc/hostname/x")
	require.Error(t, err)
	_, err = New().Resolve("x")
	require.ErrorIs(t, err, fs.ErrNotExist)
}

// TestDirFS runs the view over real directories, where a symbolic
// link to an absolute path must stay inside the image.
func TestDirFS(t *testing.T) {
	lower, upper := t.TempDir(), t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(lower, "etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(lower, "etc/passwd"), []byte("image"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(upper, "bin"), 0o755))
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(upper, "bin/pw")))
	require.NoError(t, os.WriteFile(filepath.Join(upper, ".wh.hidden"), nil, 0o644))

	img := New(os.DirFS(lower), os.DirFS(upper))
	data, err := fs.ReadFile(img, "bin/pw")
	require.NoError(t, err)
	require.Equal(t, "image", string(data), "the image's /etc/passwd, not the host's")
	require.NoError(t, fstest.TestFS(img, "etc/passwd", "bin/pw"))
}

// statOnly is a layer without fs.ReadLinkFS whose Stat does not follow
// links, as a TOC-backed file system might be.
type statOnly struct{ m fstest.MapFS }

func (s statOnly) Open(name string) (fs.File, error)     { return s.m.Open(name) }
func (s statOnly) Stat(name string) (fs.FileInfo, error) { return s.m.Lstat(name) }

func TestWithoutReadLinkFS(t *testing.T) {
	img := New(statOnly{fstest.MapFS{
		"etc/passwd": file("pw"),
		"bin/pw": {Mode: fs.ModeSymlink | 0o777,
			Sys: &toc.Entry{Name: "bin/pw", Type: toc.TypeSymlink, LinkName: "/etc/passwd"}},
		"bin/opaque": {Data: []byte("/etc/passwd"), Mode: fs.ModeSymlink | 0o777},
	}})
	loc, err := img.Resolve("bin/pw")
	require.NoError(t, err, "the target comes from the TOC entry")
	require.Equal(t, "etc/passwd", loc.Path)
	_, err = img.Resolve("bin/opaque")
	require.Error(t, err, "a link whose target cannot be read is not followed")
}

// TestResolverMatchesResolve resolves every name the test image's layers
// hold, and some through links and "..", with one resolver in turn, each
// name twice: remembering directories must not change any answer.
func TestResolverMatchesResolve(t *testing.T) {
	img := testImage()
	names := []string{".", "lib/libx.so", "usr/bin/dot/tool", "opt/app/../app/keep.txt", "var/dir/inner.txt",
		"usr/bin/tool", "usr/bin/abs", "usr/bin/escape", "loop/a", "loop/self", "etc/../etc/removed", "/etc/hostname"}
	for _, l := range img.layers {
		fs.WalkDir(l, ".", func(p string, _ fs.DirEntry, _ error) error {
			names = append(names, p)
			return nil
		})
	}
	res := img.NewResolver()
	for range 2 {
		for _, name := range names {
			want, wantErr := img.Resolve(name)
			got, err := res.Resolve(name)
			if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() ||
				got.Layer != want.Layer || got.Path != want.Path || (got.Info == nil) != (want.Info == nil) ||
				got.Info != nil && got.Info.Mode() != want.Info.Mode() {
				t.Errorf("resolver: %q = %+v, %v; Resolve = %+v, %v", name, got, err, want, wantErr)
			}
		}
	}
}

// failingFS fails every lookup of the names in fail with errBroken, as a
// lazy layer whose fetch failed does.
type failingFS struct {
	fs.FS
	fail map[string]bool
}

var errBroken = errors.New("fetch failed")

func (f failingFS) Open(name string) (fs.File, error) {
	if f.fail[name] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errBroken}
	}
	return f.FS.Open(name)
}

// TestFailingLayerHidesNothing checks that an upper layer that cannot
// answer fails the lookup rather than letting a lower layer show what it
// may hide: a whiteout, an opaque marker, or its own version of a file.
func TestFailingLayerHidesNothing(t *testing.T) {
	lower := fstest.MapFS{"etc": dir(), "etc/shadow": file("old"), "etc/keep": file("k")}
	for _, tc := range []struct {
		upper        fstest.MapFS
		broken, name string
	}{
		{fstest.MapFS{"etc": dir(), "etc/.wh.shadow": file("")}, "etc/.wh.shadow", "etc/shadow"},
		{fstest.MapFS{"etc": dir(), "etc/.wh..wh..opq": file("")}, "etc/.wh..wh..opq", "etc/keep"},
		{fstest.MapFS{".wh..wh..opq": file("")}, ".wh..wh..opq", "etc/keep"},
		{fstest.MapFS{"etc": dir(), "etc/shadow": file("new")}, "etc/shadow", "etc/shadow"},
	} {
		o := New(lower, failingFS{tc.upper, map[string]bool{tc.broken: true}})
		if _, err := fs.ReadFile(o, tc.name); !errors.Is(err, errBroken) {
			t.Errorf("%s failing: reading %s: error %v, want the layer's error", tc.broken, tc.name, err)
		}
	}
}
