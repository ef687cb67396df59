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
)

func main() {
	var cfg config
	flag.StringVar(&cfg.Dir, "dir", "", "directory to build the image from (default: the Go installation, $(go env GOROOT))")
	flag.StringVar(&cfg.File, "file", "VERSION", "a file to print lazily, relative to -dir")
	flag.StringVar(&cfg.Copy, "copy", "src/fmt", "a file or directory to copy out lazily, relative to -dir")
	flag.StringVar(&cfg.Registry, "registry", registryAuto, "registry to push to: auto (docker-registry if installed, else in-process), docker-registry or in-process")
	flag.StringVar(&cfg.Format, "format", "estargz", "the seekable format to convert to: estargz or zstd:chunked")
	flag.Parse()
	cfg.Out = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if cfg.Dir == "" {
		cfg.Dir = goroot(ctx)
	}
	if err := run(ctx, cfg); err != nil {
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
