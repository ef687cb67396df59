package prefetch

import (
	"bytes"
	"context"
	"path"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/lazylayer/lazylayer/overlay"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/.

func FuzzParseStrace(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		accesses, err := ParseStrace(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, a := range accesses {
			if !strings.HasPrefix(a.Path, "/") {
				t.Fatalf("relative path %q", a.Path)
			}
		}
	})
}

func FuzzParseTrace(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		accesses, err := ParseTrace(bytes.NewReader(data))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := WriteTrace(&buf, accesses); err != nil {
			return // an Op outside the known set cannot be written
		}
		again, err := ParseTrace(&buf)
		if err != nil {
			t.Fatalf("re-parsing written trace: %v", err)
		}
		if len(again) != len(accesses) {
			t.Fatalf("round trip: %d accesses, then %d", len(accesses), len(again))
		}
	})
}

func FuzzParsePatterns(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string, name string) {
		ps, err := ParsePatterns(s)
		if err != nil {
			return
		}
		again, err := ParsePatterns(ps.String())
		if err != nil {
			t.Fatalf("re-parsing %q: %v", ps.String(), err)
		}
		if again.String() != ps.String() {
			t.Fatalf("not stable: %q then %q", ps.String(), again.String())
		}
		ps.Match(name)
		// Exporting any plan of these paths fits a small budget and keeps
		// matching them.
		var p Plan
		for i, pat := range ps.List() {
			if kind, anchor := splitPattern(pat); kind == patternExact {
				p.Add(Item{Path: anchor, Priority: i})
			}
		}
		out := p.Patterns(-1, 64)
		if len(out.String()) > 64 {
			t.Fatalf("export of %d bytes over budget 64", len(out.String()))
		}
		for _, n := range p.Paths(-1) {
			if !out.Match(n) {
				t.Fatalf("%q lost by %q", n, out.String())
			}
		}
	})
}

// FuzzReadELF feeds arbitrary bytes to the ELF reader, directly and as
// the program of an image, where they must not panic or loop.
func FuzzReadELF(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		readELF(bytes.NewReader(data), int64(len(data)))
		img := overlay.New(fstest.MapFS{
			"bin/app":                    {Data: data, Mode: 0o755},
			"usr/lib/liba.so":            {Data: data, Mode: 0o755},
			"lib64/ld-linux-x86-64.so.2": {Data: data, Mode: 0o755},
		})
		FromImageConfig(context.Background(), img, v1.ImageConfig{Entrypoint: []string{"/bin/app"}})
	})
}

// FuzzPythonImports: any source, as an image file a script imports, is
// scanned without a panic and yields only valid module names within the
// bound.
func FuzzPythonImports(f *testing.F) {
	f.Add([]byte("import os, a.b as c\nfrom . import x\nfrom ..y import (z,\n w)\n"))
	f.Add([]byte("'''\nimport no\n'''\ndef f():\n    import no\ntry:\n    import yes\nexcept: pass\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		n := 0
		for _, imp := range pythonImports(src, true) {
			n += max(1, len(imp.names))
			if imp.module != "" && !validModule(imp.module) || imp.module == "" && imp.level == 0 {
				t.Fatalf("bad import %+v", imp)
			}
		}
		if n > maxPythonImports {
			t.Fatalf("%d imports", n)
		}
		img := overlay.New(fstest.MapFS{
			"usr/bin/python3":                  {Data: []byte("#!/usr/bin/python3.11\n"), Mode: 0o755},
			"usr/bin/python3.11":               {Data: []byte("x"), Mode: 0o755},
			"app/main.py":                      {Data: src},
			"usr/lib/python3.11/os.py":         {Data: src},
			"usr/lib/python3.11/a/__init__.py": {Data: src},
		})
		FromImageConfig(context.Background(), img, v1.ImageConfig{Entrypoint: []string{"python3", "/app/main.py"}})
	})
}

// FuzzGoHeader: any source, as the file a go command runs and as a
// package of GOROOT it imports, is scanned without a panic and yields
// only import paths that stay inside the directory they are resolved in,
// within the bound.
func FuzzGoHeader(f *testing.F) {
	f.Add([]byte("//go:build linux\n\npackage main\n\nimport (\n\t\"fmt\"\n\tx \"os\"\n)\nimport \"p\"\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		h := scanGoHeader(src)
		if len(h.imports) > maxGoImports {
			t.Fatalf("%d imports", len(h.imports))
		}
		for _, p := range h.imports {
			if !validImportPath(p) || path.Clean("/"+p) != "/"+p {
				t.Fatalf("bad import path %q", p)
			}
		}
		img := overlay.New(fstest.MapFS{
			"usr/local/go/bin/go":                   {Data: []byte("go"), Mode: 0o755},
			"usr/local/go/pkg/tool/linux_amd64/asm": {Data: []byte("asm"), Mode: 0o755},
			"usr/local/go/src/runtime/runtime.go":   {Data: src},
			"usr/local/go/src/p/p.go":               {Data: src},
			"src/main.go":                           {Data: src},
		})
		FromImageConfig(context.Background(), img, v1.ImageConfig{
			Entrypoint: []string{"/usr/local/go/bin/go", "run", "/src/main.go"},
		})
	})
}
