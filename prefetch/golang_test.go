package prefetch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/lazylayer/lazylayer/overlay"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
)

func TestParseGoCommand(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		goflags  string
		packages []string
		tags     []string
		chdir    string
	}{
		{[]string{"run", "/src/hello.go"}, "", []string{"/src/hello.go"}, nil, ""},
		{[]string{"run", "a.go", "b.go", "arg.go.txt", "c.go"}, "", []string{"a.go", "b.go"}, nil, ""},
		{[]string{"run", "-race", ".", "-v", "x"}, "", []string{"."}, []string{"race"}, ""},
		{[]string{"build", "-o", "out", "-tags", "a,b", "./cmd/...", "./x"}, "", []string{"./cmd/...", "./x"}, []string{"a", "b"}, ""},
		{[]string{"test", "-run", "TestX", "./pkg", "-count=1", "-v", "-args", "-notapkg"}, "-tags=netgo", []string{"./pkg"}, []string{"netgo"}, ""},
		{[]string{"-C", "/app", "build"}, "", nil, nil, "/app"},
		{[]string{"vet", "-C=/app", "example.com/m/..."}, "", []string{"example.com/m/..."}, nil, "/app"},
	} {
		inv, ok := parseGoCommand(tc.args, tc.goflags)
		require.True(t, ok, tc.args)
		require.Equal(t, tc.packages, inv.packages, tc.args)
		require.Equal(t, tc.tags, inv.tags, tc.args)
		require.Equal(t, tc.chdir, inv.chdir, tc.args)
	}
	for _, args := range [][]string{nil, {"version"}, {"env", "GOROOT"}, {"-C"}, {"mod", "download"}} {
		_, ok := parseGoCommand(args, "")
		require.False(t, ok, args)
	}
}

func TestGoTarget(t *testing.T) {
	linux := newGoTarget("linux", "amd64", false, []string{"netgo"})
	for name, want := range map[string]bool{
		"a.go": true, "linux.go": true, "a_linux.go": true, "a_amd64.go": true,
		"a_linux_amd64.go": true, "a_windows.go": false, "a_arm64.go": false,
		"a_linux_arm64.go": false, "a_windows_amd64.go": false, "a_test.go": false,
		"a_linux_test.go": false, "_a.go": false, ".a.go": false, "a.s": false,
		"a_foo_bar.go": true, "a_unix.go": true,
	} {
		require.Equal(t, want, linux.matchName(name, false), name)
	}
	require.True(t, linux.matchName("a_linux_test.go", true))
	require.False(t, linux.matchName("a_darwin_test.go", true))
	require.True(t, newGoTarget("android", "arm64", false, nil).matchName("a_linux.go", false))

	for line, want := range map[string]bool{
		"":                                   true,
		"//go:build linux":                   true,
		"//go:build unix && !cgo":            true,
		"//go:build cgo":                     false,
		"//go:build windows || darwin":       false,
		"//go:build go1.21 && netgo":         true,
		"//go:build ignore":                  false,
		"//go:build goexperiment.foo":        true, // either way
		"//go:build !goexperiment.foo":       true,
		"//go:build goexperiment.foo && arm": false,
		"//go:build (((":                     true, // malformed: followed
	} {
		require.Equal(t, want, linux.matchConstraint(line), line)
	}
}

func TestScanGoHeader(t *testing.T) {
	h := scanGoHeader([]byte(`// Copyright

//go:build linux && !cgo

// Package doc.
package main // comment

import "fmt"
import (
	"net/http"
	str "strings"; . "math"
	_ ` + "`embed`" + `
	/* comment */ "os" // trailing
)
import "../escape"
import "/abs"
import "a/./b"
import "tab\tbed"
import "C"

func main() {}

import "after/decl"
`))
	require.Equal(t, goHeader{build: "//go:build linux && !cgo", pkg: "main",
		imports: []string{"fmt", "net/http", "strings", "math", "embed", "os", "C"}}, h)

	require.Equal(t, goHeader{}, scanGoHeader([]byte("import \"fmt\"")), "no package clause")
	require.Equal(t, goHeader{pkg: "p"}, scanGoHeader([]byte("package p; var x = 1; import \"fmt\"")))
	require.Equal(t, goHeader{pkg: "p", imports: []string{"fmt"}},
		scanGoHeader([]byte("package p\nimport (\"fmt\" \"os\")")), "missing separator")

	var many strings.Builder
	many.WriteString("package p\nimport (\n")
	for i := range 2 * maxGoImports {
		fmt.Fprintf(&many, "\"p%d\"\n", i)
	}
	many.WriteString(")\n")
	require.Len(t, scanGoHeader([]byte(many.String())).imports, maxGoImports)
}

// goImage returns an image with a Go installation in /usr/local/go whose
// standard library holds the given packages (import path to files) and
// more files.
func goImage(std map[string]map[string]string, more fstest.MapFS) fstest.MapFS {
	const goroot = "usr/local/go/"
	img := fstest.MapFS{
		goroot + "bin/go":                            {Data: []byte("go"), Mode: 0o755},
		goroot + "go.env":                            file("GOTOOLCHAIN=auto\n"),
		goroot + "VERSION":                           file("go1.26\n"),
		goroot + "pkg/tool/linux_amd64/compile":      {Data: []byte("compile"), Mode: 0o755},
		goroot + "pkg/tool/linux_amd64/asm":          {Data: []byte("asm"), Mode: 0o755},
		goroot + "pkg/tool/linux_amd64/link":         {Data: []byte("link"), Mode: 0o755},
		goroot + "pkg/tool/linux_amd64/vet":          {Data: []byte("vet"), Mode: 0o755},
		goroot + "pkg/tool/linux_amd64/cgo":          {Data: []byte("cgo"), Mode: 0o755},
		goroot + "pkg/include/textflag.h":            file(""),
		goroot + "src/runtime/runtime.go":            file("package runtime\nimport \"internal/abi\"\n"),
		goroot + "src/runtime/asm_amd64.s":           file(""),
		goroot + "src/runtime/os_windows.go":         file("package runtime\nimport \"internal/syscall/windows\"\n"),
		goroot + "src/runtime/runtime_test.go":       file("package runtime\nimport \"testing\"\n"),
		goroot + "src/runtime/HACKING.md":            file(""),
		goroot + "src/runtime/testdata/x.go":         file("package x\n"),
		goroot + "src/internal/abi/abi.go":           file("package abi\n"),
		goroot + "src/internal/syscall/windows/w.go": file("package windows\n"),
		goroot + "src/testing/testing.go":            file("package testing\n"),
	}
	for pkg, files := range std {
		for name, src := range files {
			img[goroot+"src/"+pkg+"/"+name] = file(src)
		}
	}
	for k, v := range more {
		img[k] = v
	}
	return img
}

var goEnv = []string{"PATH=/usr/local/go/bin:/usr/bin", "CGO_ENABLED=0", "HOME=/root"}

// goPlan plans the config and returns the paths of the Go rule's items,
// GOROOT's shortened to "$/".
func goPlan(t *testing.T, img fstest.MapFS, cfg v1.ImageConfig) ([]string, error) {
	t.Helper()
	plan, err := FromImageConfig(context.Background(), overlay.New(img), cfg)
	var got []string
	for _, it := range plan.Items() {
		if it.Reason == ReasonLanguage {
			got = append(got, strings.Replace(it.Path, "usr/local/go/", "$/", 1))
		}
	}
	return got, err
}

// TestImageConfigGoRun: "go run FILE" plans go.env, every source file of
// the packages the file imports, transitively, through std's vendor
// directory and past an import cycle and a missing package, then the
// tools. Files built for other systems are planned (the go command
// opens them) but their imports are not followed.
func TestImageConfigGoRun(t *testing.T) {
	img := goImage(map[string]map[string]string{
		"fmt":                         {"print.go": "package fmt\nimport (\"runtime\"; \"net\")\n", "doc.go": "// Package fmt.\npackage fmt\n"},
		"net":                         {"net.go": "package net\nimport \"golang.org/x/net/dns\"\nimport \"nosuchpackage\"\n"},
		"vendor/golang.org/x/net/dns": {"dns.go": "package dns\nimport \"net\"\n"},
		"unused":                      {"unused.go": "package unused\n"},
	}, fstest.MapFS{
		"src/hello.go":  file("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println() }\n"),
		"src/other.go":  file("package main\nimport \"unused\"\n"),
		"usr/bin/other": {Data: []byte("x"), Mode: 0o755},
	})
	got, err := goPlan(t, img, v1.ImageConfig{
		Entrypoint: []string{"go", "run", "hello.go"}, WorkingDir: "/src", Env: goEnv,
	})
	require.NoError(t, err)
	require.Equal(t, []string{
		"$/go.env",
		"src/hello.go",
		"$/src/fmt/doc.go", "$/src/fmt/print.go",
		"$/src/runtime/asm_amd64.s", "$/src/runtime/os_windows.go", "$/src/runtime/runtime.go", "$/src/runtime/runtime_test.go",
		"$/src/net/net.go",
		"$/src/internal/abi/abi.go",
		"$/src/vendor/golang.org/x/net/dns/dns.go",
		"$/pkg/tool/linux_amd64/compile", "$/pkg/tool/linux_amd64/asm", "$/pkg/include/textflag.h",
		"$/pkg/tool/linux_amd64/link",
	}, got)

	// GOOS from the environment: the windows files' imports are followed.
	got, _ = goPlan(t, img, v1.ImageConfig{
		Entrypoint: []string{"/usr/local/go/bin/go", "build", "/src/hello.go"},
		Env:        append(goEnv, "GOOS=windows"),
	})
	require.Contains(t, got, "$/src/internal/syscall/windows/w.go")

	// No Go installation beside the program: only the program.
	got, err = goPlan(t, fstest.MapFS{"usr/bin/go": {Data: []byte("x"), Mode: 0o755}, "src/hello.go": file("package main\n")},
		v1.ImageConfig{Entrypoint: []string{"go", "run", "/src/hello.go"}})
	require.NoError(t, err)
	require.Empty(t, got)
}

// TestImageConfigGoTestModule: "go test ./..." in a module plans the
// module's packages with their tests, the main module's own packages,
// a requirement from the module cache (and its go.mod from the
// download cache), a local replacement, and the test's runtime
// packages; vendor, testdata and _ directories are not packages of the
// pattern.
func TestImageConfigGoTestModule(t *testing.T) {
	img := goImage(nil, fstest.MapFS{
		"app/go.mod": file("module example.com/app\n\ngo 1.22\n\nrequire (\n\tgithub.com/Foo/bar v1.2.3 // indirect\n" +
			"\texample.com/local v0.0.0\n)\n\nreplace example.com/local => ./local\n"),
		"app/go.sum":                   file(""),
		"app/main.go":                  file("package main\nimport \"example.com/app/internal/x\"\n"),
		"app/main_test.go":             file("package main\nimport \"github.com/Foo/bar/baz\"\n"),
		"app/internal/x/x.go":          file("package x\nimport \"example.com/local/l\"\n"),
		"app/internal/x/testdata/t.go": file("package t\n"),
		"app/_skip/s.go":               file("package s\n"),
		"app/local/l/l.go":             file("package l\n"),
		"go/pkg/mod/github.com/!foo/bar@v1.2.3/baz/baz.go":            file("package baz\n"),
		"go/pkg/mod/cache/download/github.com/!foo/bar/@v/v1.2.3.mod": file("module github.com/Foo/bar\n"),
	})
	got, err := goPlan(t, img, v1.ImageConfig{
		Entrypoint: []string{"go", "test", "./..."}, WorkingDir: "/app", Env: append(goEnv, "GOPATH=/go"),
	})
	require.NoError(t, err)
	require.Equal(t, []string{
		"$/go.env",
		"app/go.mod", "app/go.sum",
		"go/pkg/mod/cache/download/github.com/!foo/bar/@v/v1.2.3.mod",
		"app/main.go", "app/main_test.go",
		"app/internal/x/x.go",
		"app/local/l/l.go",
		"go/pkg/mod/github.com/!foo/bar@v1.2.3/baz/baz.go",
		"$/src/runtime/asm_amd64.s", "$/src/runtime/os_windows.go", "$/src/runtime/runtime.go", "$/src/runtime/runtime_test.go",
		"$/src/testing/testing.go",
		"$/src/internal/abi/abi.go",
		"$/pkg/tool/linux_amd64/compile", "$/pkg/tool/linux_amd64/asm", "$/pkg/include/textflag.h",
		"$/pkg/tool/linux_amd64/link", "$/pkg/tool/linux_amd64/vet",
	}, got)

	// With a vendor directory, requirements come from it.
	img["app/vendor/modules.txt"] = file("# github.com/Foo/bar v1.2.3\n")
	img["app/vendor/github.com/Foo/bar/baz/baz.go"] = file("package baz\n")
	got, _ = goPlan(t, img, v1.ImageConfig{
		Entrypoint: []string{"go", "vet", "."}, WorkingDir: "/app", Env: append(goEnv, "GOPATH=/go", "GOFLAGS=-mod=vendor"),
	})
	require.Contains(t, got, "app/vendor/modules.txt")
	require.Contains(t, got, "app/vendor/github.com/Foo/bar/baz/baz.go")
	require.NotContains(t, got, "go/pkg/mod/github.com/!foo/bar@v1.2.3/baz/baz.go")
	require.NotContains(t, got, "$/pkg/tool/linux_amd64/link", "vet links nothing")

	// generate reads the named package only.
	got, _ = goPlan(t, img, v1.ImageConfig{Entrypoint: []string{"go", "generate"}, WorkingDir: "/app", Env: goEnv})
	require.Equal(t, []string{"$/go.env", "app/go.mod", "app/go.sum", "app/vendor/modules.txt", "app/main.go", "app/main_test.go"}, got)
}

// TestImageConfigGoBounds: hostile sources stay within the rule's bounds:
// an import chain longer than maxGoDepth, more packages than
// maxGoPackages, a header past maxGoHeader, paths that try to leave
// GOROOT.
func TestImageConfigGoBounds(t *testing.T) {
	std := map[string]map[string]string{}
	// A chain p0 -> p1 -> ... longer than the depth bound, with a cycle
	// back to its start.
	const chain = maxGoDepth + 8
	for i := range chain {
		std[fmt.Sprintf("p%d", i)] = map[string]string{"p.go": fmt.Sprintf("package p\nimport (\"p%d\"; \"p0\")\n", i+1)}
	}
	// A fan of more packages than the bound: 36 packages importing 30 each.
	var fan strings.Builder
	fan.WriteString("package f\nimport (\n")
	for i := range 36 {
		fmt.Fprintf(&fan, "\"f%d\"\n", i)
		var sub strings.Builder
		sub.WriteString("package f\nimport (\n")
		for j := range 30 {
			fmt.Fprintf(&sub, "\"f%d/g%d\"\n", i, j)
			std[fmt.Sprintf("f%d/g%d", i, j)] = map[string]string{"g.go": "package g\n"}
		}
		sub.WriteString(")\n")
		std[fmt.Sprintf("f%d", i)] = map[string]string{"f.go": sub.String()}
	}
	fan.WriteString(")\n")
	std["fan"] = map[string]string{"f.go": fan.String()}
	// Imports after a long comment are past the header bound.
	std["big"] = map[string]string{"b.go": "/*" + strings.Repeat("x", maxGoHeader) + "*/\npackage big\nimport \"testing\"\n"}
	img := goImage(std, fstest.MapFS{
		"src/chain.go": file("package main\nimport \"p0\"\n"),
		"src/fan.go":   file("package main\nimport \"fan\"\n"),
		"src/big.go":   file("package main\nimport (\"big\"; \"../../../etc\"; \"/etc\"; \"vendor/../../etc\")\n"),
		"etc/passwd":   file("root"),
	})
	cfg := func(src string) v1.ImageConfig {
		return v1.ImageConfig{Entrypoint: []string{"go", "build", src}, Env: goEnv}
	}

	got, err := goPlan(t, img, cfg("/src/chain.go"))
	require.True(t, errors.Is(err, ErrLimit), "%v", err)
	require.Contains(t, err.Error(), "chain of 32")
	require.Contains(t, got, fmt.Sprintf("$/src/p%d/p.go", maxGoDepth-1))
	require.NotContains(t, got, fmt.Sprintf("$/src/p%d/p.go", maxGoDepth+1))

	got, err = goPlan(t, img, cfg("/src/fan.go"))
	require.True(t, errors.Is(err, ErrLimit), "%v", err)
	require.Contains(t, err.Error(), fmt.Sprintf("%d packages", maxGoPackages))
	n := 0
	for _, p := range got {
		if strings.HasSuffix(p, "/g.go") {
			n++
		}
	}
	require.Equal(t, maxGoPackages-1-1-36, n, "the bound counts the program, fan and f0...f35")

	got, err = goPlan(t, img, cfg("/src/big.go"))
	require.NoError(t, err)
	require.Contains(t, got, "$/src/big/b.go")
	require.NotContains(t, got, "$/src/testing/testing.go", "imports past the header bound")
	require.NotContains(t, got, "etc/passwd")
}
