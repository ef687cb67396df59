package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// makeTree writes a small stand-in for a Go installation: a VERSION file,
// some source, a 3 MiB "binary" and 8 MiB of other files, incompressible.
func makeTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	rng := rand.NewChaCha8([32]byte{'d', 'e', 'm', 'o'})
	random := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	files := map[string][]byte{
		"VERSION":          []byte(version),
		"src/fmt/print.go": []byte("// Package fmt prints.\npackage fmt\n" + strings.Repeat("// filler\n", 2000)),
		"src/fmt/scan.go":  []byte("package fmt\n"),
		"bin/go":           append([]byte("\x7fELF"), random(3<<20)...),
	}
	for i := range 32 {
		files[fmt.Sprintf("pkg/lib%02d.a", i)] = random(256 << 10)
	}
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const version = "go1.99.0\ntime 2026-01-01T00:00:00Z\n"

func TestRun(t *testing.T) {
	root := makeTree(t)
	for _, kind := range []string{registryAuto, registryInProcess} {
		for _, format := range []string{"estargz", "zstd:chunked"} {
			t.Run(kind+"/"+format, func(t *testing.T) {
				var out bytes.Buffer
				err := run(context.Background(), config{Dir: root, File: "VERSION", Copy: "src/fmt", Registry: kind, Format: format, Out: &out})
				t.Logf("output:\n%s", out.String())
				if err != nil {
					t.Fatalf("run: %v", err)
				}
				for _, want := range []string{
					"$ lazylayer convert", "1 layer,", // convert's summary
					"pkg", "VERSION", // ls /
					version,               // cat
					"fetched", "requests", // each read's cost
				} {
					if !strings.Contains(out.String(), want) {
						t.Errorf("output lacks %q", want)
					}
				}
			})
		}
	}
}
