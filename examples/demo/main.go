package main

import (
	"context"
	"flag"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"os/signal"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/lazylayer/lazylayer/writer"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.Dir, "dir", "", "directory to build the layer from (default: the Go installation, $(go env GOROOT))")
	files := flag.String("files", "VERSION,src/fmt/print.go,bin/go", "comma-separated files to read lazily, relative to -dir; they are also the layer's prioritised files")
	flag.StringVar(&cfg.Registry, "registry", registryAuto, "registry to push to: auto (docker-registry if installed, else sim), docker-registry or sim")
	flag.IntVar(&cfg.Level, "level", gzip.BestSpeed, "gzip level of the layer (1 fastest, 9 smallest)")
	flag.Int64Var(&cfg.ChunkSize, "chunk-size", writer.DefaultChunkSize, "largest piece of a file that is compressed, fetched and verified on its own")
	flag.Parse()
	cfg.Files = strings.Split(*files, ",")
	cfg.Out = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if cfg.Dir == "" {
		cfg.Dir = goroot(ctx)
	}
	if _, err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		stop()
		os.Exit(1)
	}
}

// goroot returns the Go installation's root: what `go env GOROOT` says,
// or, without a go command on PATH, the root this program was built with.
func goroot(ctx context.Context) string {
	if out, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); dir != "" {
			return dir
		}
	}
	return build.Default.GOROOT
}
