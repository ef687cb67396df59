package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/internal/localregistry"
	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/lazylayer/lazylayer/internal/tooltest"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// sourceLayers are the layers of the image the conversion tests start
// from, bottom first: every kind of entry a layer carries (tartest.Kinds:
// files of many sizes, up to 9 MiB, empty files, symlinks, hard links,
// devices, a fifo, xattrs, long and non-ASCII names), with setuid, setgid
// and sticky modes; then a layer of whiteouts, an opaque directory and
// replacements; a small one; and an empty one, as a Dockerfile's WORKDIR
// makes.
func sourceLayers() [][]tartest.Entry {
	rng := rand.New(rand.NewPCG(3, 4))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	mtime := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	entry := func(typ byte, name string, mode int64, content []byte) tartest.Entry {
		return tartest.Entry{Header: &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: int64(len(content)),
			ModTime: mtime, Format: tar.FormatPAX}, Content: content}
	}
	dir := func(name string, mode int64) tartest.Entry { return entry(tar.TypeDir, name, mode, nil) }
	reg := func(name string, mode int64, content []byte) tartest.Entry {
		return entry(tar.TypeReg, name, mode, content)
	}
	symlink := func(name, target string) tartest.Entry {
		e := entry(tar.TypeSymlink, name, 0o777, nil)
		e.Header.Linkname = target
		return e
	}

	base := tartest.Kinds()
	for _, e := range base {
		if e.Header.Name == "usr/lib/xattrs" {
			// A capability the kernel accepts (version 2, effective,
			// CAP_NET_BIND_SERVICE permitted), as ping's is.
			capability := binary.LittleEndian.AppendUint32(nil, 0x02000001)
			capability = binary.LittleEndian.AppendUint32(capability, 1<<10)
			capability = append(capability, make([]byte, 12)...)
			e.Header.PAXRecords["SCHILY.xattr.security.capability"] = string(capability)
		}
	}
	base = append(base,
		reg("usr/bin/setuid", 0o4755, []byte("#!/bin/sh\n")),
		reg("usr/bin/setgid", 0o2755, []byte("#!/bin/sh\n")),
		dir("tmp/", 0o1777),
		dir("opt/", 0o755),
		dir("opt/app/", 0o750),
		reg("opt/app/old", 0o644, []byte("old\n")),
		dir("opt/app/lib/", 0o755),
		reg("opt/app/lib/old.so", 0o755, random(70<<10)),
		reg("etc/remove-me", 0o600, []byte("gone\n")),
	)
	whiteouts := []tartest.Entry{
		dir("etc/", 0o755),
		reg("etc/.wh.remove-me", 0o644, nil),
		reg("etc/hostname", 0o644, []byte("converted\n")),
		symlink("etc/one", "hostname"), // a file replaced by a symlink
		dir("usr/", 0o755),
		dir("usr/lib/", 0o755),
		reg("usr/lib/.wh.small", 0o644, nil), // a whole directory
		reg("usr/lib/big2.bin", 0o644, random(6<<20+3)),
		dir("opt/", 0o755),
		dir("opt/app/", 0o700),
		reg("opt/app/.wh..wh..opq", 0o644, nil),
		reg("opt/app/new", 0o644, []byte("new\n")),
		dir("var/", 0o755),
		dir("var/empty-dir/", 0o700), // new mode, same directory
	}
	small := []tartest.Entry{
		dir("app/", 0o755),
		// The entrypoint: the config's plan puts it first, and its
		// interpreter, a hard link in the bottom layer, first there.
		reg("app/run.sh", 0o755, []byte("#!/usr/bin/tool-hardlink\nexec cat /app/config.json\n")),
		reg("app/config.json", 0o644, []byte(`{"greeting":"hello"}`+"\n")),
		reg("app/empty", 0o644, nil),
		dir("etc/", 0o755),
		reg("etc/.wh.block-511", 0o644, nil),
	}
	return [][]tartest.Entry{base, whiteouts, small, nil}
}

// source is the image the conversion tests convert, pushed with plain
// gzip layers, and the root file system it unpacks to.
type source struct {
	ref    string // host/repo:tag
	rootfs rootfs
}

// pushSource builds an image of layers (bottom first), compressed with
// gzip, and pushes it to repo:tag.
func pushSource(t *testing.T, reg *localregistry.Registry, repo, tag string, layers [][]tartest.Entry) *source {
	t.Helper()
	ctx := t.Context()
	src := &source{ref: reg.Host() + "/" + repo + ":" + tag, rootfs: rootfs{}}
	cfg := ocispec.Image{
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config:   ocispec.ImageConfig{Entrypoint: []string{"/app/run.sh"}, Env: []string{"PATH=/usr/bin"}},
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	var descs []ocispec.Descriptor
	for i, entries := range layers {
		src.rootfs.apply(entries)
		tarball, err := tartest.WriteTar(entries)
		if err != nil {
			t.Fatal(err)
		}
		var blob bytes.Buffer
		zw := gzip.NewWriter(&blob)
		if _, err := zw.Write(tarball); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		d, err := reg.Push(ctx, repo, blob.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: int64(blob.Len())})
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(tarball))
		cfg.History = append(cfg.History, ocispec.History{CreatedBy: fmt.Sprintf("layer %d", i)})
	}
	config := mustJSON(t, cfg)
	if _, err := reg.Push(ctx, repo, config); err != nil {
		t.Fatal(err)
	}
	manifest := mustJSON(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))},
		Layers:    descs,
	})
	if _, err := reg.PushManifest(ctx, repo, tag, ocispec.MediaTypeImageManifest, manifest); err != nil {
		t.Fatal(err)
	}
	return src
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lazylayer is the lazylayer command, built for the test.
type lazylayer struct{ path, tmp string }

// buildLazylayer builds cmd/lazylayer into the test's temporary
// directory.
func buildLazylayer(t *testing.T) *lazylayer {
	t.Helper()
	goTool := tooltest.Look(t, "go", "golang-go")
	dir := t.TempDir()
	l := &lazylayer{path: filepath.Join(dir, "lazylayer"), tmp: t.TempDir()}
	out, err := exec.CommandContext(t.Context(), goTool, "build", "-o", l.path, "github.com/lazylayer/lazylayer/cmd/lazylayer").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return l
}

// run runs lazylayer with args and returns its output and exit code.
func (l *lazylayer) run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), tooltest.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.path, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+l.tmp, "HOME="+l.tmp)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	if err != nil {
		t.Fatalf("lazylayer %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), 0
}

// stdout runs lazylayer with args and returns its standard output,
// failing the test unless it exits with status 0.
func (l *lazylayer) stdout(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), tooltest.CommandTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, l.path, append([]string{"--hosts-dir", l.tmp}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+l.tmp, "HOME="+l.tmp)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lazylayer %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// convert converts src to dst with the extra flags, failing the test if
// it fails.
func (l *lazylayer) convert(t *testing.T, src, dst string, flags ...string) {
	t.Helper()
	args := append([]string{"convert", "--temp-dir", l.tmp}, flags...)
	if out, code := l.run(t, append(args, src, dst)...); code != 0 {
		t.Fatalf("lazylayer convert %s %s: exit %d\n%s", src, dst, code, tooltest.Tail(out))
	}
}

// format is a seekable format the tests convert to: its --format flag
// and the tag the converted image gets.
type format struct{ flag, tag string }

// rootfs returns the root file system under dir, read as readRootfs
// does, without the files of the format's own that layers carry at their
// root: an eStargz layer's TOC and prefetch landmark, which a runtime that
// pulls whole unpacks with the rest.
func (f format) rootfs(t *testing.T, dir string) rootfs {
	t.Helper()
	r := readRootfs(t, dir)
	if f == estargz {
		for _, name := range []string{"stargz.index.json", ".prefetch.landmark", ".no.prefetch.landmark"} {
			if n := r[name]; n != nil && n.kind != 0 {
				t.Errorf("%s: a %v, want the regular file eStargz puts there", name, n.kind)
			}
			delete(r, name)
		}
	}
	return r
}

var (
	estargz     = format{"estargz", "esgz"}
	zstdChunked = format{"zstd:chunked", "zstd-chunked"}
	bothFormats = []format{estargz, zstdChunked}
)

// convertSource pushes the source image to reg as e2e/src:v1 and converts
// it with lazylayer into e2e/app, to each of formats, tagged as the
// format says. It returns the source and the command.
func convertSource(t *testing.T, reg *localregistry.Registry, formats ...format) (*source, *lazylayer) {
	t.Helper()
	src := pushSource(t, reg, "e2e/src", "v1", sourceLayers())
	ll := buildLazylayer(t)
	for _, f := range formats {
		ll.convert(t, src.ref, reg.Host()+"/e2e/app:"+f.tag, "--format", f.flag)
	}
	return src, ll
}

// getManifest returns the manifest of repo:ref in reg.
func getManifest(t *testing.T, reg *localregistry.Registry, repo, ref string) ([]byte, ocispec.Manifest) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, reg.URL()+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest %s:%s: %s, %v\n%s", repo, ref, resp.Status, err, b)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest %s:%s: %v", repo, ref, err)
	}
	return b, m
}

// getBlob returns blob d of repo in reg.
func getBlob(t *testing.T, reg *localregistry.Registry, repo string, d digest.Digest) []byte {
	t.Helper()
	resp, err := http.Get(reg.BlobURL(repo, d))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET blob %s: %s, %v", d, resp.Status, err)
	}
	return b
}
