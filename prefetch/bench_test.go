package prefetch

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"testing"
	"testing/fstest"

	"github.com/lazylayer/lazylayer/overlay"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func BenchmarkParseStrace(b *testing.B) {
	data, err := os.ReadFile("testdata/python3-import-json.strace")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseStrace(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFromImageConfig plans a synthetic image of ten layers whose
// program needs fifty libraries spread over them.
func BenchmarkFromImageConfig(b *testing.B) {
	layers := make([]fs.FS, 10)
	var needed []string
	for i := range 50 {
		needed = append(needed, fmt.Sprintf("lib%d.so", i))
	}
	for i := range layers {
		m := fstest.MapFS{}
		for j := i; j < 50; j += len(layers) {
			m[fmt.Sprintf("usr/lib/x86_64-linux-gnu/lib%d.so", j)] = elfFile(fakeELF{needed: []string{"lib0.so"}})
		}
		layers[i] = m
	}
	layers[0].(fstest.MapFS)["lib64/ld-linux-x86-64.so.2"] = elfFile(fakeELF{})
	layers[9].(fstest.MapFS)["usr/bin/app"] = elfFile(fakeELF{interp: glibcLoader, needed: needed})
	img := overlay.New(layers...)
	cfg := v1.ImageConfig{Entrypoint: []string{"app"}}
	for b.Loop() {
		p, err := FromImageConfig(context.Background(), img, cfg)
		if err != nil || p.Len() != 52 {
			b.Fatal(p.Len(), err)
		}
	}
}

func BenchmarkPatterns(b *testing.B) {
	var p Plan
	for i := range 5000 {
		p.Add(Item{Path: fmt.Sprintf("usr/lib/python3.12/pkg%d/mod%d.py", i%97, i), Priority: i})
	}
	for b.Loop() {
		if ps := p.Patterns(-1, DefaultPatternBudget); ps.Len() == 0 {
			b.Fatal("empty")
		}
	}
}
