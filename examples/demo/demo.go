package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/dirtar"
	"github.com/lazylayer/lazylayer/internal/localregistry"
	"github.com/lazylayer/lazylayer/internal/simregistry"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/writer"
	"github.com/opencontainers/go-digest"
)

// Registries the demo can push to.
const (
	registryAuto   = "auto"
	registryDocker = "docker-registry"
	registrySim    = "sim"
)

const (
	repo = "demo/layer"
	// largeFile is the size above which the demo reads only the head of a
	// file, through io.ReaderAt, as a program mapping a binary would.
	largeFile = 1 << 20
	headSize  = 4 << 10
	// cacheBytes bounds the chunk cache; the demo reads far less.
	cacheBytes = 256 << 20
)

// config is what a run does.
type config struct {
	Dir       string   // directory the layer is built from
	Files     []string // files to read, relative to Dir; also prioritised
	Registry  string   // registryAuto, registryDocker or registrySim
	Level     int      // gzip compression level
	ChunkSize int64    // largest chunk of a file in the layer
	Out       io.Writer
}

// summary is what a run measured.
type summary struct {
	Registry string         // registryDocker or registrySim
	Layer    *writer.Result // the blob that was built and pushed
	Open     fetcher.Stats  // traffic of reader.Open alone
	Total    fetcher.Stats  // traffic of the whole run
	Files    []fileRead
}

// fileRead is what the demo read of one file.
type fileRead struct {
	Name    string
	Size    int64 // the file's size; -1 if the layer lacks it
	Read    int64 // bytes read from it
	Content []byte

	Fetched, Requests int64 // traffic the read caused (0 if the cache had it)
}

// run builds the layer, pushes it, reads cfg.Files lazily and prints
// what it did to cfg.Out.
func run(ctx context.Context, cfg config) (*summary, error) {
	out := cfg.Out
	// The registry first: a bad -registry should fail before the build.
	reg, kind, err := startRegistry(ctx, cfg.Registry)
	if err != nil {
		return nil, err
	}
	defer reg.Close()
	start := time.Now()
	var blob bytes.Buffer
	res, tree, err := buildLayer(ctx, &blob, cfg)
	if err != nil {
		return nil, err
	}
	took := time.Since(start)
	fmt.Fprintf(out, "layer     %s: %d files, %s -> eStargz blob of %s, tar+build in %s (%s/s)\n",
		cfg.Dir, tree.Files, formatBytes(tree.Bytes), formatBytes(res.Size), round(took), formatBytes(int64(float64(tree.Bytes)/took.Seconds())))

	start = time.Now()
	d, err := reg.Push(ctx, repo, blob.Bytes())
	if err != nil {
		return nil, err
	}
	name := "docker-registry"
	if kind == registrySim {
		name = "simulated registry (in-process; install docker-registry for a real one)"
	}
	fmt.Fprintf(out, "registry  %s at %s, blob pushed in %s\n", name, reg.Host(), round(time.Since(start)))

	// From here on the demo is a client that knows only the layer's
	// descriptor: the blob's URL, size and TOC digest annotation.
	f, err := fetcher.NewHTTP(reg.BlobURL(repo, d), fetcher.WithPlainHTTP(), fetcher.WithSize(res.Size))
	if err != nil {
		return nil, err
	}
	start = time.Now()
	layer, err := reader.Open(ctx, f,
		reader.WithTOCDigest(res.TOCDigest),
		reader.WithCache(cache.NewMemory(cacheBytes)))
	if err != nil {
		return nil, err
	}
	defer layer.Close()
	sum := &summary{Registry: kind, Layer: res, Open: f.Stats()}
	fmt.Fprintf(out, "open      TOC of %d entries verified in %s: %s, %s\n",
		len(layer.TOC().Entries), round(time.Since(start)), plural(sum.Open.Requests, "request"), formatBytes(sum.Open.Bytes))

	start = time.Now()
	width := 0
	for _, name := range cfg.Files {
		width = max(width, len(name))
	}
	for _, name := range cfg.Files {
		before := f.Stats()
		fr, err := readFile(layer, name)
		if err != nil {
			return nil, err
		}
		after := f.Stats()
		fr.Fetched, fr.Requests = after.Bytes-before.Bytes, after.Requests-before.Requests
		sum.Files = append(sum.Files, fr)
		fmt.Fprintf(out, "read      %-*s  %s\n", width, name, describe(fr))
	}
	readTook := time.Since(start)

	sum.Total = f.Stats()
	fmt.Fprintf(out, "fetched   %s of the %s layer (%.2f%%) in %s; the reads took %s\n",
		formatBytes(sum.Total.Bytes), formatBytes(res.Size), 100*float64(sum.Total.Bytes)/float64(res.Size),
		plural(sum.Total.Requests, "HTTP request"), round(readTook))
	return sum, nil
}

// buildLayer tars cfg.Dir straight into writer.Build, which writes the
// eStargz blob to w.
func buildLayer(ctx context.Context, w io.Writer, cfg config) (*writer.Result, dirtar.Stats, error) {
	pr, pw := io.Pipe()
	type tarred struct {
		stats dirtar.Stats
		err   error
	}
	done := make(chan tarred, 1)
	go func() {
		st, err := dirtar.Write(pw, cfg.Dir)
		pw.CloseWithError(err)
		done <- tarred{st, err}
	}()
	res, err := writer.Build(ctx, w, pr,
		writer.WithPrioritizedFiles(cfg.Files),
		writer.WithAllowMissingPrioritized(),
		writer.WithCompressionLevel(cfg.Level),
		writer.WithChunkSize(cfg.ChunkSize))
	if err == nil {
		// Build stops at the tar end marker; let the tar writer finish.
		_, err = io.Copy(io.Discard, pr)
	}
	pr.CloseWithError(err) // unblocks the tar writer if Build gave up early
	t := <-done
	if err != nil {
		// A tar error reaches Build through the pipe, so err names it too.
		return nil, t.stats, fmt.Errorf("build layer of %s: %w", cfg.Dir, err)
	}
	if t.err != nil {
		return nil, t.stats, fmt.Errorf("tar %s: %w", cfg.Dir, t.err)
	}
	return res, t.stats, nil
}

// registry is where the demo pushes its layer.
type registry interface {
	Push(ctx context.Context, repo string, blob []byte) (digest.Digest, error)
	BlobURL(repo string, d digest.Digest) string
	Host() string
	Close() error
}

// startRegistry starts the registry kind names and returns it with the
// kind it started (auto resolves to one of the others).
func startRegistry(ctx context.Context, kind string) (registry, string, error) {
	switch kind {
	case registryAuto, registryDocker:
		reg, err := localregistry.Start(ctx)
		if err == nil {
			return reg, registryDocker, nil
		}
		if kind == registryDocker || !errors.Is(err, localregistry.ErrNotInstalled) {
			return nil, "", err
		}
		fallthrough
	case registrySim:
		s, err := simregistry.NewServer()
		if err != nil {
			return nil, "", err
		}
		return simRegistry{s}, registrySim, nil
	default:
		return nil, "", fmt.Errorf("unknown registry %q: want %s, %s or %s", kind, registryAuto, registryDocker, registrySim)
	}
}

// simRegistry gives the simulated registry the demo's Push.
type simRegistry struct{ *simregistry.Server }

func (s simRegistry) Push(_ context.Context, repo string, blob []byte) (digest.Digest, error) {
	return s.AddBlob(repo, blob), nil
}

// readFile reads name from the layer: all of it when it is small, its
// head through io.ReaderAt when it is large.
func readFile(layer *reader.Layer, name string) (fileRead, error) {
	fr := fileRead{Name: name, Size: -1}
	file, err := layer.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return fr, nil
	}
	if err != nil {
		return fr, err
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return fr, err
	}
	fr.Size = info.Size()
	if fr.Size <= largeFile {
		fr.Content, err = io.ReadAll(file)
	} else if ra, ok := file.(io.ReaderAt); ok {
		fr.Content = make([]byte, headSize)
		var n int
		n, err = ra.ReadAt(fr.Content, 0)
		fr.Content = fr.Content[:n]
	} else {
		err = fmt.Errorf("%s: %T is not an io.ReaderAt", name, file)
	}
	fr.Read = int64(len(fr.Content))
	return fr, err
}

// describe says in a few words what was read of a file.
func describe(fr fileRead) string {
	switch {
	case fr.Size < 0:
		return "not in this layer"
	}
	desc := fmt.Sprintf("%9s  fetched %9s in %-10s", formatBytes(fr.Size), formatBytes(fr.Fetched), plural(fr.Requests, "request"))
	if fr.Read < fr.Size {
		kind := ""
		if bytes.HasPrefix(fr.Content, []byte("\x7fELF")) {
			kind = ", an ELF binary"
		}
		return desc + fmt.Sprintf("  first %s through ReaderAt: % x ...%s",
			formatBytes(fr.Read), fr.Content[:min(len(fr.Content), 4)], kind)
	}
	sum := sha256.Sum256(fr.Content)
	line, _, _ := bytes.Cut(fr.Content, []byte("\n"))
	desc += "  sha256:" + hex.EncodeToString(sum[:6])
	if len(line) > 0 && utf8.Valid(line) && !bytes.ContainsRune(line, 0) {
		desc += fmt.Sprintf("  %q", truncate(string(line), 40))
	}
	return desc
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// formatBytes formats n with a decimal unit: 950 B, 33.1 kB, 98.0 MB.
func formatBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTP"[exp])
}

// round shortens a duration for display.
func round(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(100 * time.Microsecond)
}

// plural returns "1 request" or "n requests".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
