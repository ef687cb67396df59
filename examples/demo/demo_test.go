package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// makeTree writes a small stand-in for a Go installation: a VERSION file,
// some source, a 3 MiB "binary" that is larger than the demo reads whole
// and spans several chunks, and 8 MiB of other files, all incompressible.
func makeTree(t *testing.T) (root string, binary []byte) {
	t.Helper()
	root = t.TempDir()
	rng := rand.NewChaCha8([32]byte{'d', 'e', 'm', 'o'})
	random := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	binary = random(3 << 20)
	copy(binary, "\x7fELF")
	files := map[string][]byte{
		"VERSION":          []byte(version),
		"src/fmt/print.go": []byte("// Package fmt prints.\npackage fmt\n" + strings.Repeat("// filler\n", 2000)),
		"bin/go":           binary,
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
	return root, binary
}

const chunkSize = 256 << 10

const version = "go1.99.0\ntime 2026-01-01T00:00:00Z\n"

func TestRun(t *testing.T) {
	root, binary := makeTree(t)
	for _, kind := range []string{registryAuto, registrySim} {
		t.Run(kind, func(t *testing.T) {
			var out bytes.Buffer
			sum, err := run(context.Background(), config{
				Dir:       root,
				Files:     []string{"VERSION", "src/fmt/print.go", "bin/go", "no/such/file"},
				Registry:  kind,
				Level:     gzip.BestSpeed,
				ChunkSize: chunkSize,
				Out:       &out,
			})
			if err != nil {
				t.Fatalf("run: %v\noutput:\n%s", err, out.String())
			}
			t.Logf("output:\n%s", out.String())
			if kind == registrySim && sum.Registry != registrySim {
				t.Errorf("registry %q, want %q", sum.Registry, registrySim)
			}

			want := map[string]struct {
				size    int64
				content []byte
			}{
				"VERSION":          {int64(len(version)), []byte(version)},
				"src/fmt/print.go": {35 + 20000, nil},
				"bin/go":           {3 << 20, binary[:headSize]},
				"no/such/file":     {-1, nil},
			}
			if len(sum.Files) != len(want) {
				t.Fatalf("read %d files, want %d", len(sum.Files), len(want))
			}
			for _, fr := range sum.Files {
				w := want[fr.Name]
				if fr.Size != w.size {
					t.Errorf("%s: size %d, want %d", fr.Name, fr.Size, w.size)
				}
				if w.content != nil && !bytes.Equal(fr.Content, w.content) {
					t.Errorf("%s: read %d bytes that differ from the file's", fr.Name, len(fr.Content))
				}
				// The binary's head costs one chunk, not the whole file.
				if fr.Name == "bin/go" && (fr.Requests < 1 || fr.Fetched <= 0 || fr.Fetched > 2*chunkSize) {
					t.Errorf("bin/go: head read fetched %d bytes in %d requests; want one %d-byte chunk", fr.Fetched, fr.Requests, chunkSize)
				}
			}

			// The reads need the blob's tail (TOC and footer) and a few
			// chunks, not the 3 MiB binary nor the rest of the tree.
			if sum.Total.Bytes <= 0 || sum.Total.Bytes >= sum.Layer.Size/4 {
				t.Errorf("fetched %d bytes of a %d-byte layer; want a little of it", sum.Total.Bytes, sum.Layer.Size)
			}
			if sum.Open.Requests < 1 || sum.Total.Requests <= sum.Open.Requests {
				t.Errorf("requests: %d to open, %d in all", sum.Open.Requests, sum.Total.Requests)
			}
			for _, line := range []string{"layer ", "registry ", "open ", "read      VERSION", "not in this layer", "an ELF binary", "fetched "} {
				if !strings.Contains(out.String(), line) {
					t.Errorf("output lacks %q", line)
				}
			}
		})
	}
}

func TestUnknownRegistry(t *testing.T) {
	root, _ := makeTree(t)
	_, err := run(context.Background(), config{Dir: root, Registry: "quay", Level: gzip.BestSpeed, ChunkSize: chunkSize, Out: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), `unknown registry "quay"`) {
		t.Errorf("run with an unknown registry: %v", err)
	}
}

func TestMissingDir(t *testing.T) {
	_, err := run(context.Background(), config{Dir: filepath.Join(t.TempDir(), "absent"), Registry: registrySim, Level: gzip.BestSpeed, ChunkSize: chunkSize, Out: &bytes.Buffer{}})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("run on a missing directory: %v", err)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 33100: "33.1 kB", 84_800_000: "84.8 MB", 2_500_000_000: "2.5 GB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
