package snapshotter_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/snapshotters"
	"github.com/lazylayer/lazylayer/convert"
	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/internal/localregistry"
	"github.com/lazylayer/lazylayer/internal/tooltest"
	"github.com/lazylayer/lazylayer/registry"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The container's program prints "hello" and the sha256 of each file its
// arguments name.
const helloSource = `package main

import (
	"crypto/sha256"
	"fmt"
	"os"
)

func main() {
	fmt.Println("hello")
	for _, name := range os.Args[1:] {
		data, err := os.ReadFile(name)
		if err != nil {
			fmt.Println(name, "error", err)
			os.Exit(1)
		}
		fmt.Printf("%s %x\n", name, sha256.Sum256(data))
	}
}
`

// env is containerd with the snapshotter in one mount namespace, and a
// registry holding a plain image and its conversion.
type env struct {
	box        *tooltest.Sandbox
	ctr        string
	address    string
	nsPID      int // containerd, whose mount namespace the snapshotter joins
	snapBin    string
	snapRoot   string
	snapSock   string
	metrics    string
	snap       *exec.Cmd
	snapExited chan struct{}
	reg        *localregistry.Registry
	plain      string // reference of the plain image
	lazy       string // reference of the converted image
	files      map[string][]byte
	top        testing.TB // whose end stops what subtests start
	// gen numbers the state of containerd and of the snapshotter: a
	// restart with a new gen starts them cold.
	gen      int
	snapArgs []string // more flags for the snapshotter
}

func TestEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		tooltest.Missing(t, tooltest.RequireEnv, "root", "(run as root)", fmt.Errorf("uid %d", os.Geteuid()))
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		tooltest.Missing(t, tooltest.RequireEnv, "/dev/fuse", "fuse3", err)
	}
	tooltest.Look(t, "runc", "runc")
	tooltest.Look(t, "nsenter", "util-linux")
	e := &env{box: tooltest.NewSandbox(t), ctr: tooltest.Look(t, "ctr", "containerd"), top: t}
	e.startRegistry(t)
	e.buildImages(t)
	e.buildSnapshotter(t)
	e.holdNamespace(t)
	e.startSnapshotter(t)
	e.startContainerd(t)

	names := []string{"/hello", "/data/big", "/data/small"}
	check := func(t *testing.T, out string) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 1+len(names) || lines[0] != "hello" {
			t.Fatalf("container printed %q", out)
		}
		for i, name := range names {
			want := fmt.Sprintf("%s %x", name, sha256.Sum256(e.files[name]))
			if lines[1+i] != want {
				t.Errorf("container read %q, want %q (the source)", lines[1+i], want)
			}
		}
	}
	client, err := containerd.New(e.address, containerd.WithDefaultNamespace("default"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	var lazyTime time.Duration
	t.Run("lazy", func(t *testing.T) {
		start := time.Now()
		e.pull(t, client, e.lazy)
		out := e.run(t, "lazylayer", e.lazy, "lazy1", names...)
		lazyTime = time.Since(start)
		check(t, out)
		if got := e.mounts(t); got != 2 {
			t.Errorf("%d FUSE mounts of the snapshotter, want one per layer, 2", got)
		}
	})
	t.Run("plain image unpacked by containerd", func(t *testing.T) {
		e.pull(t, client, e.plain)
		check(t, e.run(t, "lazylayer", e.plain, "plain1", names...))
	})
	t.Run("overlayfs full pull", func(t *testing.T) {
		start := time.Now()
		e.box.Run(t, nil, e.ctr, "--address", e.address, "images", "pull", "--plain-http", e.lazy)
		out := e.run(t, "overlayfs", e.lazy, "full1", names...)
		t.Logf("pull and run: lazy %v, full pull with overlayfs %v (loopback registry, no shaping)", lazyTime, time.Since(start))
		check(t, out)
	})
	t.Run("restart", func(t *testing.T) {
		e.kill(t)
		if got := e.mounts(t); got != 2 {
			t.Fatalf("%d mounts left by the killed snapshotter, want its 2 (dead)", got)
		}
		e.startSnapshotter(t)
		e.waitConnected(t)
		if got := e.mounts(t); got != 2 {
			t.Errorf("%d FUSE mounts after the restart, want 2", got)
		}
		check(t, e.run(t, "lazylayer", e.lazy, "lazy2", names...))
	})
	t.Run("corrupted cache is refetched", func(t *testing.T) {
		// Damage every cached chunk while the snapshotter is down, so
		// that the mounts it makes again come with no page cache.
		e.kill(t)
		if n := corruptCache(t, filepath.Join(e.snapRoot, "cache")); n == 0 {
			t.Fatal("the cache holds no chunks to corrupt")
		}
		e.startSnapshotter(t)
		e.waitConnected(t)
		check(t, e.run(t, "lazylayer", e.lazy, "lazy4", names...))
		if m := scrape(t, e.metrics); m["lazylayer_cache_verify_failures_total"] == 0 {
			t.Error("the container read files whose chunks were all damaged, but the cache found no damage")
		}
	})
	t.Run("registry gone after fetching", func(t *testing.T) {
		e.waitFetched(t)
		e.reg.Close()
		check(t, e.run(t, "lazylayer", e.lazy, "lazy3", names...))
	})
	t.Run("removing the image frees its cache", func(t *testing.T) {
		if err := client.ImageService().Delete(t.Context(), e.lazy, images.SynchronousDelete()); err != nil {
			t.Fatal(err)
		}
		if got := e.mounts(t); got != 0 {
			t.Errorf("%d FUSE mounts after the image was removed, want none", got)
		}
		if _, entries, _ := cacheFiles(t, filepath.Join(e.snapRoot, "cache")); len(entries) != 0 {
			t.Errorf("%d chunks left in the cache after the only lazy image was removed", len(entries))
		}
		if n := scrape(t, e.metrics)["lazylayer_memory_cache_bytes"]; n != 0 {
			t.Errorf("%v bytes of chunks left in memory after the only lazy image was removed", n)
		}
	})
	t.Run("stop leaves no mount", func(t *testing.T) {
		e.stop(t)
		if got := e.mounts(t); got != 0 {
			t.Errorf("%d FUSE mounts after the snapshotter stopped, want none", got)
		}
	})
}

func (e *env) startRegistry(t testing.TB) {
	if _, err := os.Stat(localregistry.Binary); err != nil {
		tooltest.Missing(t, tooltest.RequireEnv, "docker-registry", "docker-registry", err)
	}
	reg, err := localregistry.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	e.reg = reg
}

// buildImages pushes a plain two-layer image (a static program, then
// data) and converts it to eStargz in another repository.
func (e *env) buildImages(t testing.TB) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(helloSource), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n"), 0o644)
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", "hello", ".")
	build.Dir, build.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the container's program: %v\n%s", err, out)
	}
	hello, err := os.ReadFile(filepath.Join(dir, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 6<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>13)
	}
	e.files = map[string][]byte{"/hello": hello, "/data/big": big, "/data/small": []byte("small file\n")}

	var tars [][]byte
	for _, files := range [][]string{{"/hello"}, {"/data/big", "/data/small"}} {
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		for _, name := range files {
			mode := int64(0o644)
			if name == "/hello" {
				mode = 0o755
			} else {
				tw.WriteHeader(&tar.Header{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o755})
			}
			tw.WriteHeader(&tar.Header{Name: name[1:], Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(e.files[name]))})
			tw.Write(e.files[name])
		}
		tw.Close()
		tars = append(tars, tb.Bytes())
	}
	e.pushImage(t, "plain", tars, ocispec.ImageConfig{Entrypoint: []string{"/hello"}})
	e.plain = e.reg.Host() + "/plain:v1"
	e.lazy = e.reg.Host() + "/lazy:v1"

	ctx := t.Context()
	rc, err := registry.New()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	src, err := image.ParseReference(e.plain, rc)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := rc.Repository(e.lazy)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := convert.Image(ctx, src, dst); err != nil {
		t.Fatalf("convert %s to %s: %v", e.plain, e.lazy, err)
	}
}

// startContainerd starts containerd with its state under gen, and
// returns what stops it; the test's end stops it too.
// pushImage pushes an image of the given layers (tar streams, pushed
// gzip) and config to repo:v1 and returns its reference and the size of
// its compressed layers.
func (e *env) pushImage(t testing.TB, repo string, tars [][]byte, cfg ocispec.ImageConfig) (string, int64) {
	t.Helper()
	ctx := t.Context()
	var layers []ocispec.Descriptor
	var diffIDs []digest.Digest
	var size int64
	for _, tb := range tars {
		diffIDs = append(diffIDs, digest.FromBytes(tb))
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(tb)
		zw.Close()
		d, err := e.reg.Push(ctx, repo, gz.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		size += int64(gz.Len())
		layers = append(layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: int64(gz.Len())})
	}
	config, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   cfg,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	})
	cd, err := e.reg.Push(ctx, repo, config)
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(config))},
		Layers: layers,
	})
	if _, err := e.reg.PushManifest(ctx, repo, "v1", ocispec.MediaTypeImageManifest, manifest); err != nil {
		t.Fatal(err)
	}
	return e.reg.Host() + "/" + repo + ":v1", size
}

// containerdDir holds the state of this generation's containerd.
func (e *env) containerdDir() string { return e.box.Path(fmt.Sprintf("containerd%d", e.gen)) }

func (e *env) startContainerd(t testing.TB) (stop func()) {
	path := tooltest.Look(t, "containerd", "containerd")
	e.address = e.box.Path("c.sock")
	config := tooltest.ContainerdConfig(e.containerdDir(), e.address, true, fmt.Sprintf(`[proxy_plugins.lazylayer]
  type = "snapshot"
  address = %q
`, e.snapSock))
	configPath := e.box.Path("config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var log bytes.Buffer
	cmd := exec.CommandContext(ctx, "nsenter", "--mount=/proc/"+strconv.Itoa(e.nsPID)+"/ns/mnt", "--", path, "--config", configPath)
	cmd.Env = append(os.Environ(), "TMPDIR="+e.box.Path("tmp"))
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop = func() { cancel(); <-exited }
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("containerd:\n%s", tooltest.Tail(log.String()))
		}
	})
	tooltest.WaitListen(t, "containerd", e.address, exited, &log)
	return stop
}

// holdNamespace starts a process in a sandbox's mount namespace, which
// containerd and the snapshotter then join: each sees the other's
// mounts, and the namespace, with every mount in it, goes when the
// test ends.
func (e *env) holdNamespace(t testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := e.box.Command(ctx, nil, "/bin/sh", "-c", "echo ready; exec sleep infinity")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	// Once it prints, the binds over /run and /var/lib are in place.
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("namespace holder: %q, %v", line, err)
	}
	e.nsPID = cmd.Process.Pid
}

func (e *env) buildSnapshotter(t testing.TB) {
	e.snapBin = filepath.Join(t.TempDir(), "lazylayer-snapshotter")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", e.snapBin, "./cmd/lazylayer-snapshotter")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the snapshotter: %v\n%s", err, out)
	}
	e.snapSock = e.box.Path("snap.sock")
}

// startSnapshotter runs the snapshotter in containerd's mount namespace,
// so that containerd sees its mounts.
func (e *env) startSnapshotter(t testing.TB) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.metrics = l.Addr().String()
	l.Close()
	e.snapRoot = e.box.Path(fmt.Sprintf("snapshotter%d", e.gen))
	var log bytes.Buffer
	args := append([]string{"--mount=/proc/" + strconv.Itoa(e.nsPID) + "/ns/mnt", "--",
		e.snapBin, "--root", e.snapRoot, "--address", e.snapSock, "--metrics-address", e.metrics, "--hosts-dir", ""}, e.snapArgs...)
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	e.snap, e.snapExited = cmd, exited
	e.top.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		if t.Failed() {
			t.Logf("snapshotter:\n%s", tooltest.Tail(log.String()))
		}
	})
	tooltest.WaitListen(t, "lazylayer-snapshotter", e.snapSock, exited, &log)
}

// kill kills the snapshotter as a crash would.
func (e *env) kill(t testing.TB) {
	e.snap.Process.Kill()
	<-e.snapExited
}

// stop stops the snapshotter as a service manager would.
func (e *env) stop(t testing.TB) {
	e.snap.Process.Signal(syscall.SIGTERM)
	<-e.snapExited
}

// mounts counts the snapshotter's FUSE mounts in containerd's namespace.
func (e *env) mounts(t testing.TB) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", e.nsPID))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.Contains(s.Text(), " lazylayer:") {
			n++
		}
	}
	return n
}

// waitFetched waits until the snapshotter has fetched every mounted
// layer whole, as its metrics tell.
func (e *env) waitFetched(t testing.TB) {
	deadline := time.Now().Add(time.Minute)
	var body []byte
	var err error
	for time.Now().Before(deadline) {
		var resp *http.Response
		resp, err = http.Get("http://" + e.metrics + "/metrics")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(body, []byte("\nlazylayer_layers_fetching 0\n")) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the layers were not fetched whole in a minute: %v\n%s", err, body)
}

// waitConnected waits until containerd reaches the snapshotter again:
// its proxy reconnects after a backoff.
func (e *env) waitConnected(t testing.TB) {
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := e.box.Try(t, nil, nil, e.ctr, "--address", e.address, "snapshots", "--snapshotter", "lazylayer", "ls")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd does not reach the restarted snapshotter: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cacheFiles lists the entries of the chunk cache at dir: its large
// entries' files, and the live records of its packs as "<pack>@<offset>".
func cacheFiles(t testing.TB, dir string) (total int64, entries []string, err error) {
	t.Helper()
	cacheEntries(t, dir, func(path string, off, n int64, packed bool) {
		total += n
		if packed {
			path = fmt.Sprintf("%s@%d", path, off)
		}
		entries = append(entries, path)
	})
	return total, entries, nil
}

// cacheEntries calls fn with the place (a file, or a pack and the offset
// of the data in it) and length of each entry of the chunk cache at dir.
// It decodes packs by the record format package cache documents: a
// 16-byte header ("LLpk", flags whose bit 0 marks a removed record, the
// key's length, two zero bytes, the data's big-endian uint64 length),
// then the key and the data.
func cacheEntries(t testing.TB, dir string, fn func(path string, off, n int64, packed bool)) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(dir, "sha256"), func(path string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		fn(path, 0, info.Size(), false)
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	packs, err := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range packs {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; len(data)-off >= 16 && string(data[off:off+4]) == "LLpk"; {
			h := data[off : off+16]
			start := off + 16 + int(h[5])
			n := binary.BigEndian.Uint64(h[8:])
			if n > uint64(len(data)-start) {
				break // torn
			}
			if h[4]&1 == 0 {
				fn(path, int64(start), int64(n), true)
			}
			off = start + int(n)
		}
	}
}

// corruptCache flips a byte in every entry of the chunk cache at dir and
// returns how many it damaged.
func corruptCache(t testing.TB, dir string) int {
	t.Helper()
	damaged := 0
	cacheEntries(t, dir, func(path string, off, n int64, _ bool) {
		if n == 0 {
			return
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off+n/2); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{^b[0]}, off+n/2); err != nil {
			t.Fatal(err)
		}
		damaged++
	})
	return damaged
}

// pull pulls ref with containerd's Go client, unpacking it with the
// snapshotter, and with the labels that name each layer.
func (e *env) pull(t testing.TB, client *containerd.Client, ref string) {
	t.Helper()
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchAllHosts)),
	})
	if _, err := client.Pull(t.Context(), ref,
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter("lazylayer"),
		containerd.WithResolver(resolver),
		containerd.WithImageHandlerWrapper(snapshotters.AppendInfoHandlerWrapper(ref)),
	); err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
}

// run runs the image's program in a container and returns its output.
func (e *env) run(t testing.TB, snapshotter, ref, id string, args ...string) string {
	t.Helper()
	argv := append([]string{"--address", e.address, "run", "--rm", "--snapshotter", snapshotter, ref, id, "/hello"}, args...)
	return e.box.Run(t, nil, e.ctr, argv...)
}
