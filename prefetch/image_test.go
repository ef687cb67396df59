package prefetch

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/lazylayer/lazylayer/overlay"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
)

// replicate copies the host file hostPath into root at the same path,
// reproducing every symbolic link met on the way (in parent directories
// and at the file itself), so that root resolves the path as the host does.
func replicate(t *testing.T, root, hostPath string) {
	t.Helper()
	cur := "/"
	elems := strings.Split(strings.Trim(filepath.Clean(hostPath), "/"), "/")
	for i, elem := range elems {
		host := filepath.Join(cur, elem)
		fi, err := os.Lstat(host)
		require.NoError(t, err)
		dst := filepath.Join(root, host)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(host)
			require.NoError(t, err)
			if _, err := os.Lstat(dst); err != nil {
				require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
				require.NoError(t, os.Symlink(target, dst))
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			replicate(t, root, filepath.Join(append([]string{target}, elems[i+1:]...)...))
			return
		case fi.IsDir():
			require.NoError(t, os.MkdirAll(dst, 0o755))
		default:
			copyFile(t, host, dst, fi.Mode().Perm())
		}
		cur = host
	}
}

func copyFile(t *testing.T, src, dst string, perm os.FileMode) {
	t.Helper()
	if _, err := os.Lstat(dst); err == nil {
		return
	}
	in, err := os.Open(src)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, perm)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
}

// lddDeps returns the loader and libraries ldd reports for a host binary,
// as real paths relative to the root.
func lddDeps(t *testing.T, binary string) []string {
	t.Helper()
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Skip("ldd not available")
	}
	out, err := exec.Command("ldd", binary).Output()
	if err != nil {
		t.Skipf("ldd %s: %v", binary, err)
	}
	var deps []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		var p string
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			p = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			p = f[0]
		default:
			continue // linux-vdso and the like have no file
		}
		deps = append(deps, p)
	}
	require.NotEmpty(t, deps)
	return deps
}

func realRel(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	require.NoError(t, err)
	return strings.TrimPrefix(r, "/")
}

// TestImageConfigCoversLoaderAndLibraries is the target: the plan
// of an image whose entrypoint is a dynamically linked binary covers its
// loader and every library the real ldd lists. The image has two layers:
// the base holds the libraries, the upper one the program.
func TestImageConfigCoversLoaderAndLibraries(t *testing.T) {
	for _, binary := range []string{"/usr/bin/ls", "/usr/bin/python3"} {
		prog := filepath.Base(binary)
		t.Run(prog, func(t *testing.T) {
			if _, err := os.Stat(binary); err != nil {
				t.Skipf("%s not installed", binary)
			}
			deps := lddDeps(t, binary)
			base, upper := t.TempDir(), t.TempDir()
			for _, d := range deps {
				replicate(t, base, d)
			}
			replicate(t, upper, binary)
			for _, conf := range []string{"/etc/ld.so.conf"} {
				if _, err := os.Stat(conf); err == nil {
					replicate(t, base, conf)
				}
			}

			img := overlay.New(os.DirFS(base), os.DirFS(upper))
			cfg := v1.ImageConfig{Entrypoint: []string{prog}, Cmd: []string{"--version"}}
			plan, err := FromImageConfig(context.Background(), img, cfg, WithRuntimeFiles(false))
			require.NoError(t, err)

			items := plan.Items()
			byPath := make(map[string]Item)
			for _, it := range items {
				byPath[it.Path] = it
			}
			entry := byPath[realRel(t, binary)]
			require.Equal(t, ReasonEntrypoint, entry.Reason)
			require.Equal(t, 1, entry.Layer, "the program comes from the upper layer")
			require.Equal(t, 0, entry.Priority, "the program is read first")
			for _, d := range deps {
				it, ok := byPath[realRel(t, d)]
				require.True(t, ok, "plan misses %s (%s); plan: %v", d, realRel(t, d), items)
				require.Equal(t, 0, it.Layer)
				require.Contains(t, []Reason{ReasonELFInterp, ReasonELFNeeded}, it.Reason)
			}
			require.Len(t, items, len(deps)+1, "nothing but the program, loader and libraries: %v", items)
		})
	}
}

// TestImageConfigOriginOfTheRealBinary: $ORIGIN of a program is the
// directory of the file the kernel executed, with links resolved. The
// JDK's java finds libjli.so through DT_RPATH $ORIGIN/../lib behind
// /usr/bin/java -> /etc/alternatives/java -> .../bin/java; ldd, which
// starts from the unresolved name, reports it "not found".
func TestImageConfigOriginOfTheRealBinary(t *testing.T) {
	const binary = "/usr/bin/java"
	if _, err := os.Stat(binary); err != nil {
		t.Skip("no java")
	}
	jli := filepath.Join(filepath.Dir(filepath.Dir(realRel(t, binary))), "lib", "libjli.so")
	if _, err := os.Stat("/" + jli); err != nil {
		t.Skip("java without ../lib/libjli.so")
	}
	root := t.TempDir()
	replicate(t, root, binary)
	replicate(t, root, "/"+jli)
	for _, d := range append(lddDeps(t, binary), lddDeps(t, "/"+jli)...) {
		replicate(t, root, d)
	}
	plan, err := FromImageConfig(context.Background(), overlay.New(os.DirFS(root)),
		v1.ImageConfig{Entrypoint: []string{"java"}, Cmd: []string{"-version"}}, WithRuntimeFiles(false))
	require.NoError(t, err)
	require.Contains(t, plan.Paths(-1), jli)
}

func TestImageConfigErrorsAreListedNotFatal(t *testing.T) {
	img := overlay.New(fstest.MapFS{
		"etc/passwd":      {Data: []byte("root:x:0:0::/root:/bin/sh\n")},
		"usr/bin/missing": {Data: []byte("#!/no/such/interpreter\n"), Mode: 0o755},
	})
	plan, err := FromImageConfig(context.Background(), img, v1.ImageConfig{Cmd: []string{"missing"}})
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, []string{"usr/bin/missing", "etc/passwd"}, plan.Paths(-1))

	plan, err = FromImageConfig(context.Background(), img, v1.ImageConfig{Cmd: []string{"nothere"}})
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, []string{"etc/passwd"}, plan.Paths(-1))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = FromImageConfig(ctx, img, v1.ImageConfig{Cmd: []string{"missing"}})
	require.ErrorIs(t, err, context.Canceled)
}

func script(body string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(body), Mode: 0o755}
}

func TestImageConfigPathAndShebangs(t *testing.T) {
	layer := fstest.MapFS{
		"usr/local/bin/app":    script("#!/usr/bin/env -S FOO=1 runner -x\nbody\n"),
		"usr/bin/env":          script("\x7fELF not really"),
		"usr/bin/runner":       script("#! /opt/interp/bin/inner arg\n"),
		"opt/interp/bin/inner": script("#!/bin/loop\n"),
		"bin":                  {Data: []byte("usr/bin"), Mode: 0o777 | os.ModeSymlink},
		"usr/bin/loop":         script("#!/bin/loop\n"),
		"srv/tool":             script("plain data"),
		"usr/bin/noexec":       {Data: []byte("x"), Mode: 0o644},
	}
	img := overlay.New(layer)
	plan, err := FromImageConfig(context.Background(), img, v1.ImageConfig{
		Entrypoint: []string{"app"},
	}, WithRuntimeFiles(false))
	require.ErrorIs(t, err, ErrMalformed, "the fake env is no ELF file")
	require.Equal(t, []string{
		"usr/local/bin/app", "usr/bin/env", "usr/bin/runner", "opt/interp/bin/inner", "usr/bin/loop",
	}, plan.Paths(-1))
	for _, it := range plan.Items()[1:] {
		require.Equal(t, ReasonInterpreter, it.Reason)
	}

	// A relative program name is taken from WorkingDir; a PATH without
	// the directory does not find it; non-executables are skipped.
	plan, err = FromImageConfig(context.Background(), img, v1.ImageConfig{
		Entrypoint: []string{"./tool"}, WorkingDir: "/srv",
	}, WithRuntimeFiles(false))
	require.NoError(t, err)
	require.Equal(t, []string{"srv/tool"}, plan.Paths(-1))

	_, err = FromImageConfig(context.Background(), img, v1.ImageConfig{
		Entrypoint: []string{"tool"}, Env: []string{"PATH=/usr/bin"},
	}, WithRuntimeFiles(false))
	require.ErrorIs(t, err, ErrNotFound)

	plan, err = FromImageConfig(context.Background(), img, v1.ImageConfig{
		Entrypoint: []string{"noexec"},
	}, WithRuntimeFiles(false))
	require.ErrorIs(t, err, ErrNotFound)
	require.Zero(t, plan.Len())

	// The depth bound stops a chain of interpreters.
	_, err = FromImageConfig(context.Background(), img, v1.ImageConfig{
		Entrypoint: []string{"/usr/local/bin/app"},
	}, WithRuntimeFiles(false), WithMaxInterpreterDepth(2))
	require.ErrorIs(t, err, ErrLimit)

	// sh -c 'exec cmd' runs cmd too.
	layer["bin/sh"] = script("\x7fELF")
	layer["usr/bin/sh"] = script("#!/usr/bin/loop\n")
	plan, _ = FromImageConfig(context.Background(), img, v1.ImageConfig{
		Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"A=1 exec runner --flag"},
	}, WithRuntimeFiles(false))
	require.True(t, slices.Contains(plan.Paths(-1), "usr/bin/runner"), plan.Paths(-1))
}

func TestShellCommand(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want []string
	}{
		{[]string{"/bin/sh", "-c", "exec nginx -g 'daemon off;'"}, []string{"nginx", "-g"}},
		{[]string{"bash", "-ec", "FOO=bar ./start.sh A=1"}, []string{"./start.sh", "A=1"}},
		{[]string{"sh", "-c", "$CMD"}, nil},
		{[]string{"sh", "script.sh", "x"}, nil},
		{[]string{"python3", "-c", "print(1)"}, nil},
	} {
		got, ok := shellCommand(tc.argv)
		require.Equal(t, tc.want != nil, ok, tc.argv)
		require.Equal(t, tc.want, got, tc.argv)
	}
}

func TestImageConfigRuntimeFiles(t *testing.T) {
	img := overlay.New(fstest.MapFS{
		"etc/nsswitch.conf":                 {Data: []byte("hosts: files dns\n")},
		"etc/localtime":                     {Data: []byte("/usr/share/zoneinfo/Etc/UTC"), Mode: os.ModeSymlink | 0o777},
		"usr/share/zoneinfo/Etc/UTC":        {Data: []byte("TZif")},
		"usr/share/zoneinfo/Europe/Berlin":  {Data: []byte("TZif")},
		"etc/ssl/certs/ca-certificates.crt": {Data: []byte("-----BEGIN")},
		"usr/lib/locale/C.utf8/LC_CTYPE":    {Data: []byte("x")},
		"usr/lib/locale/locale-archive":     {Data: []byte("x")},
		"usr/lib/python3.12/os.py":          {Data: []byte("x")},
	})
	plan, err := FromImageConfig(context.Background(), img, v1.ImageConfig{
		Env: []string{"TZ=:Europe/Berlin", "LANG=C.UTF-8"},
	})
	require.NoError(t, err)
	require.Equal(t, []string{
		"etc/nsswitch.conf", "usr/share/zoneinfo/Etc/UTC", "etc/ssl/certs/ca-certificates.crt",
		"usr/share/zoneinfo/Europe/Berlin",
	}, plan.Paths(-1), "glibc locale files need a glibc program")
	for _, it := range plan.Items() {
		require.Equal(t, ReasonRuntime, it.Reason)
	}
}

func TestNormaliseLocale(t *testing.T) {
	for in, want := range map[string]string{
		"C.UTF-8": "C.utf8", "de_DE.ISO-8859-1@euro": "de_DE.iso88591@euro", "en_US": "en_US",
		"../..": "", "a/b.UTF-8": "", "..": "",
	} {
		got, ok := normaliseLocale(in)
		require.Equal(t, want, got, in)
		require.Equal(t, want != "", ok, in)
	}
}

// TestImageConfigPython checks the CPython rule against the host's real
// interpreter and standard library.
func TestImageConfigPython(t *testing.T) {
	binary := "/usr/bin/python3"
	if _, err := os.Stat(binary); err != nil {
		t.Skip("python3 not installed")
	}
	real := realRel(t, binary)
	version := strings.TrimPrefix(filepath.Base(real), "python")
	stdlib := filepath.Join("/usr/lib", "python"+version)
	if _, err := os.Stat(filepath.Join(stdlib, "os.py")); err != nil || !strings.HasPrefix(real, "usr/bin/") {
		t.Skip("python3 is not laid out as /usr/bin + /usr/lib/pythonX.Y")
	}
	root := t.TempDir()
	replicate(t, root, binary)
	for _, m := range []string{"os.py", "site.py", "encodings/__init__.py", "encodings/utf_8.py", "json/__init__.py"} {
		replicate(t, root, filepath.Join(stdlib, m))
	}
	plan, err := FromImageConfig(context.Background(), overlay.New(os.DirFS(root)),
		v1.ImageConfig{Entrypoint: []string{"python3"}})
	require.True(t, err == nil || errors.Is(err, ErrNotFound), "%v", err) // libraries were not copied
	paths := plan.Paths(-1)
	lib := strings.TrimPrefix(stdlib, "/")
	for _, want := range []string{lib + "/os.py", lib + "/site.py", lib + "/encodings/__init__.py", lib + "/encodings/utf_8.py"} {
		require.Contains(t, paths, want)
	}
	require.NotContains(t, paths, lib+"/json/__init__.py", "not read at start")
}
