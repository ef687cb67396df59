// Package benchimage builds the image that the image benchmarks measure
// (package convert's BenchmarkImageRealTrees and examples/bench's convert
// and open modes): three gzip layers of real trees of this machine, the Go
// toolchain, a JDK and a Python installation with its binary, each under
// the path it has here, in an OCI image layout.
package benchimage

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/lazylayer/lazylayer/image/layout"
	"github.com/lazylayer/lazylayer/internal/dirtar"
	"github.com/lazylayer/lazylayer/internal/iox"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrMissing is returned by Trees and Build when this machine lacks one
// of the trees.
var ErrMissing = errors.New("benchimage: a tree is missing")

// Trees returns the roots of each layer, bottom first: the Go toolchain
// ($(go env GOROOT)), one JDK (/usr/lib/jvm: Temurin, else OpenJDK), and
// the Python installation /usr/bin/python3 runs (its /usr/lib/python3.X
// and its binary).
func Trees() ([][]string, error) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return nil, fmt.Errorf("%w: go env GOROOT: %v", ErrMissing, err)
	}
	layers := [][]string{{strings.TrimSpace(string(out))}}
	jdk := firstDir("/usr/lib/jvm/temurin-*", "/usr/lib/jvm/java-*-openjdk-*")
	if jdk == "" {
		return nil, fmt.Errorf("%w: no JDK in /usr/lib/jvm (apt-get install default-jdk-headless)", ErrMissing)
	}
	layers = append(layers, []string{jdk})
	python, err := filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil {
		return nil, fmt.Errorf("%w: /usr/bin/python3: %v", ErrMissing, err)
	}
	lib := firstDir(filepath.Join("/usr/lib", filepath.Base(python)))
	if lib == "" {
		return nil, fmt.Errorf("%w: no /usr/lib/%s for %s", ErrMissing, filepath.Base(python), python)
	}
	return append(layers, []string{lib, python}), nil
}

// firstDir returns the first directory the patterns match, or "".
func firstDir(patterns ...string) string {
	for _, pattern := range patterns {
		m, _ := filepath.Glob(pattern)
		for _, dir := range m {
			if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
				return dir
			}
		}
	}
	return ""
}

// Image is what Build wrote.
type Image struct {
	Layers   [][]string // each layer's roots, bottom first
	Files    int        // regular files in all layers
	TarBytes int64      // uncompressed tar bytes of all layers
	// GzipBytes is the layers' compressed size.
	GzipBytes int64
	Manifest  ocispec.Descriptor
	// Entrypoint is the config's: the JDK's java -version.
	Entrypoint []string
}

// Build writes the image of Trees to the OCI layout dir (made if need
// be), tagged tag: one layer per tree at gzip's default level, as docker
// and buildkit write layers, and a config for linux/amd64 whose
// entrypoint runs the JDK's java. Layers are compressed one at a time,
// through a temporary file in dir.
func Build(ctx context.Context, dir, tag string) (*Image, error) {
	trees, err := Trees()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l, err := layout.Open(dir, tag)
	if err != nil {
		return nil, err
	}
	img := &Image{Layers: trees, Entrypoint: []string{filepath.Join(trees[1][0], "bin/java"), "-version"}}
	config := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Config:   ocispec.ImageConfig{Entrypoint: img.Entrypoint, Env: []string{"PATH=/usr/bin:/bin"}},
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest}
	m.SchemaVersion = 2
	for _, roots := range trees {
		d, diffID, st, tarBytes, err := addLayer(ctx, l, dir, roots)
		if err != nil {
			return nil, err
		}
		m.Layers = append(m.Layers, d)
		config.RootFS.DiffIDs = append(config.RootFS.DiffIDs, diffID)
		config.History = append(config.History, ocispec.History{CreatedBy: "COPY " + strings.Join(roots, " ")})
		img.Files += st.Files
		img.TarBytes += tarBytes
		img.GzipBytes += d.Size
	}
	if m.Config, err = pushJSON(ctx, l, ocispec.MediaTypeImageConfig, config); err != nil {
		return nil, err
	}
	if img.Manifest, err = pushJSON(ctx, l, m.MediaType, m); err != nil {
		return nil, err
	}
	return img, l.Tag(ctx, img.Manifest)
}

// addLayer pushes the gzip layer of the trees at roots to l.
func addLayer(ctx context.Context, l *layout.Layout, tmp string, roots []string) (_ ocispec.Descriptor, diffID digest.Digest, _ dirtar.Stats, tarBytes int64, err error) {
	f, err := os.CreateTemp(tmp, "layer-*")
	if err != nil {
		return ocispec.Descriptor{}, "", dirtar.Stats{}, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	blob, diff := sha256.New(), sha256.New()
	blobBytes := &iox.CountingWriter{W: io.MultiWriter(f, blob)}
	zw := gzip.NewWriter(blobBytes)
	tarCount := &iox.CountingWriter{W: io.MultiWriter(zw, diff)}
	st, err := dirtar.WriteTrees(tarCount, roots...)
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return ocispec.Descriptor{}, "", st, 0, fmt.Errorf("benchimage: layer %q: %w", roots, err)
	}
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.NewDigest(digest.SHA256, blob), Size: blobBytes.N}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return d, "", st, 0, err
	}
	if err := l.PushBlob(ctx, d, f); err != nil {
		return d, "", st, 0, err
	}
	return d, digest.NewDigest(digest.SHA256, diff), st, tarCount.N, nil
}

// pushJSON pushes v as a blob of media type mediaType.
func pushJSON(ctx context.Context, l *layout.Layout, mediaType string, v any) (ocispec.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	return d, l.PushManifest(ctx, d, data)
}
