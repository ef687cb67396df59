package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/lazylayer/lazylayer/internal/dirtar"
	"github.com/lazylayer/lazylayer/internal/simregistry"
	"github.com/opencontainers/go-digest"
)

// Env is what every mode is given: the layer in its forms, the trace to
// read, and a registry behind the simulated link. Modes must not modify
// it.
type Env struct {
	Dir  string       // the layer's source directory
	Tree dirtar.Stats // what Dir holds

	Trace      []TraceFile // the files the workload reads, in order
	TraceBytes int64       // their total size

	Link     simregistry.Link
	Registry Registry
	Client   *http.Client // pulls from Registry.URL() through the link
	Repo     string       // the repository that holds the run's blobs

	// TarPath is the layer as a deterministic uncompressed tar; modes
	// that build another format read it through OpenTar.
	TarPath string
	// Gzip is the layer as a plain gzip tarball, pushed to Repo: what a
	// registry serves to a full pull, and what a SOCI snapshotter reads
	// lazily with its zTOC. GzipPath holds the same bytes.
	Gzip     blobInfo
	GzipPath string

	// StartupCompressed estimates the compressed bytes the trace needs:
	// each trace file gzipped on its own. A mode that knows the real
	// figure from a chunk table reports it in Result.NeededBytes.
	StartupCompressed int64

	// PrefetchWorkers and PrefetchRequests configure the lazy modes'
	// prefetches (prefetch.WithWorkers, prefetch.WithRequests).
	PrefetchWorkers, PrefetchRequests int
	// NoAnnotations opens lazy layers with only their TOC digest, not
	// the layer descriptor's annotations, leaving the reader's defaults
	// to find the index.
	NoAnnotations bool
	// RequestLog, if not nil, receives every request of each lazy run.
	RequestLog io.Writer

	// TempDir is scratch space removed after the run; see ScratchDir.
	TempDir string
}

// blobInfo identifies a blob in the registry.
type blobInfo struct {
	Digest digest.Digest
	Size   int64
}

// BlobURL returns where the registry serves blob d of the run's
// repository, through the link.
func (e *Env) BlobURL(d digest.Digest) string {
	return simregistry.BlobURL(e.Registry.URL(), e.Repo, d)
}

// OpenTar opens the layer's uncompressed tar stream.
func (e *Env) OpenTar() (io.ReadCloser, error) { return os.Open(e.TarPath) }

// ScratchDir makes a new empty directory under TempDir whose name starts
// with prefix.
func (e *Env) ScratchDir(prefix string) (string, error) { return os.MkdirTemp(e.TempDir, prefix) }

// setupEnv builds the layer from dir in a new directory under scratch,
// and pushes the gzip layer to reg. It reports its progress to logf.
func setupEnv(ctx context.Context, dir, scratch string, trace []TraceFile, link simregistry.Link, reg Registry, logf func(string, ...any)) (_ *Env, err error) {
	tmp, err := os.MkdirTemp(scratch, "lazylayer-bench-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	e := &Env{Dir: dir, Trace: trace, Link: link, Registry: reg, Client: newLocalClient(), Repo: "bench/layer", TempDir: tmp}
	for _, tf := range trace {
		e.TraceBytes += tf.Size
	}

	start := time.Now()
	e.TarPath = filepath.Join(tmp, "layer.tar")
	f, err := os.Create(e.TarPath)
	if err != nil {
		return nil, err
	}
	e.Tree, err = dirtar.Write(f, dir)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("tar %s: %w", dir, err)
	}
	tr, err := e.OpenTar()
	if err != nil {
		return nil, err
	}
	gz, err := gzipBytes(tr)
	tr.Close()
	if err != nil {
		return nil, fmt.Errorf("gzip layer: %w", err)
	}
	if e.Gzip.Digest, err = reg.Push(ctx, e.Repo, gz); err != nil {
		return nil, err
	}
	e.Gzip.Size = int64(len(gz))
	e.GzipPath = filepath.Join(tmp, "layer.tar.gz")
	if err := os.WriteFile(e.GzipPath, gz, 0o644); err != nil {
		return nil, err
	}
	if e.StartupCompressed, err = estimateCompressed(dir, trace); err != nil {
		return nil, err
	}
	logf("setup: tar, gzip and push took %v", time.Since(start).Round(time.Millisecond))
	return e, nil
}

// Close removes the run's scratch space.
func (e *Env) Close() error { return os.RemoveAll(e.TempDir) }
