// Command lazylayer converts container images to seekable layer formats
// (eStargz, zstd:chunked) and reads images lazily: it lists, prints and
// copies files of an image in a registry while fetching only the bytes
// they need.
//
// Install it with
//
//	go install github.com/lazylayer/lazylayer/cmd/lazylayer@latest
//
// and run "lazylayer help" for its verbs.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/lazylayer/lazylayer/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
