package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/klauspost/compress/gzip"
	"github.com/lazylayer/lazylayer/image/layout"
	"github.com/lazylayer/lazylayer/internal/cli"
	"github.com/lazylayer/lazylayer/internal/dirtar"
	"github.com/lazylayer/lazylayer/internal/iox"
	"github.com/lazylayer/lazylayer/internal/localregistry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Registries the demo can push to.
const (
	registryAuto      = "auto"
	registryDocker    = "docker-registry"
	registryInProcess = "in-process"
)

// config is what a run does.
type config struct {
	Dir      string // directory the image is built from
	File     string // a file to print, relative to Dir
	Copy     string // a file or directory to copy out, relative to Dir
	Registry string // registryAuto, registryDocker or registryInProcess
	Format   string // estargz or zstd:chunked
	Out      io.Writer
}

// run builds the image, starts the registry and runs the command's
// verbs against it, printing each command line and what it printed.
func run(ctx context.Context, cfg config) error {
	out := cfg.Out
	host, kind, stop, err := startRegistry(ctx, cfg.Registry)
	if err != nil {
		return err
	}
	defer stop()
	work, err := os.MkdirTemp("", "lazylayer-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	start := time.Now()
	src := "oci:" + filepath.Join(work, "image") + ":v1"
	tree, size, err := buildImage(ctx, filepath.Join(work, "image"), cfg.Dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "image     %s: %d files, %s of tar -> a plain gzip layer of %s in %s, as %s\n",
		cfg.Dir, tree.Files, formatBytes(tree.Bytes), formatBytes(size), round(time.Since(start)), src)
	fmt.Fprintf(out, "registry  %s at %s\n\n", kind, host)

	dst := host + "/demo/dir:lazy"
	steps := [][]string{
		{"convert", "--format", cfg.Format, src, dst},
		{"inspect", dst},
		{"ls", dst, "/"},
		{"cat", dst, "/" + cfg.File},
		{"cp", dst, "/" + cfg.Copy, filepath.Join(work, "copy")},
	}
	for _, args := range steps {
		fmt.Fprintf(out, "$ lazylayer %s\n", strings.Join(args, " "))
		start := time.Now()
		if code := cli.Run(ctx, args, out, out); code != 0 {
			return fmt.Errorf("lazylayer %s: exit status %d", args[0], code)
		}
		fmt.Fprintf(out, "(%s)\n\n", round(time.Since(start)))
	}
	return nil
}

// buildImage writes an image of one plain gzip layer, the tar of dir, as
// the OCI layout at path, tagged v1: an ordinary image, as a build tool
// makes one. It returns what was tarred and the layer's size.
func buildImage(ctx context.Context, path, dir string) (dirtar.Stats, int64, error) {
	tmp, err := os.CreateTemp("", "lazylayer-demo-layer-")
	if err != nil {
		return dirtar.Stats{}, 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	blob, diff := digest.SHA256.Digester(), digest.SHA256.Digester()
	counted := &iox.CountingWriter{W: io.MultiWriter(tmp, blob.Hash())}
	zw, err := gzip.NewWriterLevel(counted, gzip.BestSpeed)
	if err != nil {
		return dirtar.Stats{}, 0, err
	}
	tree, err := dirtar.Write(io.MultiWriter(zw, diff.Hash()), dir)
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return tree, 0, fmt.Errorf("tar %s: %w", dir, err)
	}

	lay, err := layout.Open(path, "v1")
	if err != nil {
		return tree, 0, err
	}
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: blob.Digest(), Size: counted.N}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return tree, 0, err
	}
	if err := lay.PushBlob(ctx, layer, tmp); err != nil {
		return tree, 0, err
	}
	config := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Config:   ocispec.ImageConfig{Entrypoint: []string{"/bin/go"}, Env: []string{"PATH=/bin"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diff.Digest()}},
	}
	configDesc, err := pushJSON(ctx, lay, ocispec.MediaTypeImageConfig, config, true)
	if err != nil {
		return tree, 0, err
	}
	manifest := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: configDesc, Layers: []ocispec.Descriptor{layer}}
	manifest.SchemaVersion = 2
	manifestDesc, err := pushJSON(ctx, lay, ocispec.MediaTypeImageManifest, manifest, false)
	if err != nil {
		return tree, 0, err
	}
	return tree, counted.N, lay.Tag(ctx, manifestDesc)
}

func pushJSON(ctx context.Context, lay *layout.Layout, mediaType string, v any, blob bool) (ocispec.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if blob {
		return desc, lay.PushBlob(ctx, desc, strings.NewReader(string(data)))
	}
	return desc, lay.PushManifest(ctx, desc, data)
}

// startRegistry starts the registry kind names and returns its host, the
// kind it started (auto resolves to one of the others) and how to stop it.
func startRegistry(ctx context.Context, kind string) (host, started string, stop func(), err error) {
	switch kind {
	case registryAuto, registryDocker:
		reg, err := localregistry.Start(ctx)
		if err == nil {
			return reg.Host(), registryDocker, func() { reg.Close() }, nil
		}
		if kind == registryDocker || !errors.Is(err, localregistry.ErrNotInstalled) {
			return "", "", nil, err
		}
		fallthrough
	case registryInProcess:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", "", nil, err
		}
		srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: time.Minute}
		go srv.Serve(l)
		return l.Addr().String(), registryInProcess + " registry (install docker-registry for a real one)", func() { srv.Close() }, nil
	default:
		return "", "", nil, fmt.Errorf("unknown registry %q: want %s, %s or %s", kind, registryAuto, registryDocker, registryInProcess)
	}
}

// formatBytes formats n in binary units, as the command does.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// round shortens a duration for display.
func round(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(100 * time.Microsecond)
}
