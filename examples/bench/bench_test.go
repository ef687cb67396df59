package main

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/internal/localregistry"
	"github.com/lazylayer/lazylayer/internal/simregistry"
)

// makeTree writes a small layer tree and returns its root.
func makeTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"bin/tool":          strings.Repeat("binary", 1000),
		"lib/a.txt":         "alpha",
		"lib/deep/b.txt":    strings.Repeat("bravo\n", 5000),
		"lib/deep/empty":    "",
		"share/doc/README":  "read me",
		"share/doc/LICENSE": "license",
	}
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("deep/b.txt", filepath.Join(root, "lib/b-link")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestStraceToTrace(t *testing.T) {
	root := makeTree(t)
	log := strings.Join([]string{
		`100 execve("` + root + `/bin/tool", ["tool"], 0x7ffd /* 10 vars */) = 0`,
		`100 openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3`,
		`100 openat(AT_FDCWD, "` + root + `/lib/a.txt", O_RDONLY|O_CLOEXEC <unfinished ...>`,
		`101 openat(AT_FDCWD, "` + root + `/lib/missing", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)`,
		`100 <... openat resumed>) = 4`,
		`101 openat(AT_FDCWD, "` + root + `/share/doc/README", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 5`,
		`101 openat(AT_FDCWD, "` + root + `/lib/deep", O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY) = 6`,
		`101 openat(AT_FDCWD, "lib/deep/empty", O_RDONLY) = 7`,
		`101 openat(AT_FDCWD, "` + root + `/lib/b-link", O_RDONLY) = 8`,
		`101 newfstatat(AT_FDCWD, "` + root + `/share/doc/LICENSE", {st_mode=S_IFREG|0644, st_size=7, ...}, 0) = 0`,
		`100 openat(AT_FDCWD, "` + root + `/lib/a.txt", O_RDONLY|O_CLOEXEC) = 9`,
		`100 +++ exited with 0 +++`,
	}, "\n")
	got, err := straceToTrace(strings.NewReader(log), root)
	if err != nil {
		t.Fatal(err)
	}
	// The symlink resolves to the file it names; failed, written,
	// directory, relative and outside opens are left out, as are stats.
	want := []string{"bin/tool", "lib/a.txt", "lib/deep/b.txt"}
	if !slices.Equal(got, want) {
		t.Errorf("straceToTrace = %q, want %q", got, want)
	}
}

func TestLoadTrace(t *testing.T) {
	root := makeTree(t)
	trace := "# a comment\nlib/a.txt\n\nlib/deep/b.txt\nlib/a.txt\nlib/gone\nlib/b-link\n"
	files, skipped, err := loadTrace(strings.NewReader(trace), "t", root)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Name != "lib/a.txt" || files[0].Size != 5 || files[1].Size != 30000 {
		t.Errorf("files = %+v", files)
	}
	if !slices.Equal(skipped, []string{"lib/gone", "lib/b-link"}) {
		t.Errorf("skipped = %q", skipped)
	}
	if _, _, err := loadTrace(strings.NewReader("../etc/passwd\n"), "t", root); err == nil {
		t.Error("a path outside the layer was accepted")
	}
	if _, _, err := loadTrace(strings.NewReader("nothing\n"), "t", root); err == nil {
		t.Error("a trace with no file in the layer was accepted")
	}
}

func TestReadTraceVerifies(t *testing.T) {
	root := makeTree(t)
	files, _, err := loadTrace(strings.NewReader("lib/a.txt\n"), "t", root)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := readTrace(os.DirFS(root), files); err != nil || n != 5 {
		t.Fatalf("readTrace = %d, %v; want 5 bytes", n, err)
	}
	files[0].CRC ^= 1
	if _, err := readTrace(os.DirFS(root), files); err == nil {
		t.Error("readTrace accepted bytes with the wrong CRC")
	}
}

func TestUntarConfined(t *testing.T) {
	for name, entries := range map[string][]tar.Header{
		"dot-dot":       {{Name: "../escape", Typeflag: tar.TypeReg}},
		"absolute":      {{Name: "/etc/escape", Typeflag: tar.TypeReg}},
		"under symlink": {{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}, {Name: "out/escape", Typeflag: tar.TypeReg}},
		"onto symlink":  {{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "/tmp/escape"}, {Name: "out", Typeflag: tar.TypeReg}},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range entries {
			h.Mode = 0o644
			if err := tw.WriteHeader(&h); err != nil {
				t.Fatal(err)
			}
		}
		tw.Close()
		if err := untar(&buf, t.TempDir()); err == nil {
			t.Errorf("%s: untar succeeded", name)
		}
	}
}

// runBench runs the whole program on the small tree with the given
// registry and returns its report.
func runBench(t *testing.T, registry string) string {
	t.Helper()
	root := makeTree(t)
	traceFile := filepath.Join(t.TempDir(), "trace")
	if err := os.WriteFile(traceFile, []byte("bin/tool\nlib/deep/b.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run([]string{"-dir", root, "-trace", traceFile, "-rtt", "1ms", "-bw", "1GB/s", "-registry", registry, "-scratch", t.TempDir()}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	return stdout.String()
}

func TestRunSim(t *testing.T) {
	out := runBench(t, "sim")
	for _, want := range []string{"trace", "2 files, 36.0 kB", "full pull", "decompress", "untar",
		// The trace prefetches, under each multi-range behaviour.
		"lazy + trace prefetch   multi", "lazy + trace prefetch  single", "lazy + trace prefetch  reject",
		"lazy zstd:chunked + trace prefetch  reject", "lazy + trace prefetch (single)",
		// The gzip layer with its zTOC, against the eStargz limit.
		"lazy gzip+zTOC (4 MiB spans), no prefetch", "lazy gzip+zTOC (4 MiB spans) + trace prefetch  reject",
		"x eStargz limit", "of spans and the"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "full pull  single") {
		t.Errorf("report has a full pull for each multi-range behaviour:\n%s", out)
	}
}

func TestRunRejectsRanges(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run([]string{"-ranges", "multi,some"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "some") {
		t.Errorf("run with -ranges multi,some: %v", err)
	}
}

func TestRunDockerRegistry(t *testing.T) {
	if _, err := os.Stat(localregistry.Binary); err != nil {
		if os.Getenv("LAZYLAYER_REQUIRE_REGISTRY") != "" {
			t.Fatalf("docker-registry required: %v", err)
		}
		t.Skipf("no docker-registry: %v", err)
	}
	out := runBench(t, "docker")
	if !strings.Contains(out, "registry docker") || !strings.Contains(out, "full pull") {
		t.Errorf("report:\n%s", out)
	}
}

func TestFullPullTraffic(t *testing.T) {
	root := makeTree(t)
	trace, _, err := loadTrace(strings.NewReader("lib/a.txt\nshare/doc/README\n"), "t", root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	reg, err := newRegistry(ctx, "sim", simregistry.Link{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	env, err := setupEnv(ctx, root, t.TempDir(), trace, simregistry.Link{}, reg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	res, err := fullPull(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 1 || res.Bytes != env.Gzip.Size {
		t.Errorf("full pull: %d requests, %d bytes; want 1 and the blob's %d", res.Requests, res.Bytes, env.Gzip.Size)
	}
	var names []string
	for _, s := range res.Stages {
		names = append(names, s.Name)
	}
	if want := []string{"open", "fetch", "decompress", "untar", "read"}; !slices.Equal(names, want) {
		t.Errorf("stages %q, want %q", names, want)
	}
}

// FuzzReadPath checks that no strace line makes the converter panic, and
// that whatever path it accepts came from a successful call.
func FuzzReadPath(f *testing.F) {
	f.Add(`openat(AT_FDCWD, "/usr/lib/x.so", O_RDONLY|O_CLOEXEC) = 3`)
	f.Add(`execve("/bin/true", ["true"], 0x7ffd /* 1 var */) = 0`)
	f.Add(`openat(AT_FDCWD, "/x", O_RDONLY) = -1 ENOENT (No such file or directory)`)
	f.Add(`openat(AT_FDCWD, "/x", O_RDONLY) = `)
	f.Fuzz(func(t *testing.T, call string) {
		name, ok := readPath(call)
		if !ok {
			return
		}
		ret := call[strings.LastIndex(call, ") = ")+len(") = "):]
		if ret == "" || ret[0] < '0' || ret[0] > '9' {
			t.Errorf("readPath(%q) = %q from a call that did not succeed", call, name)
		}
	})
}

// The image modes run only when named, and take their words out of the
// list the layer modes select from.
func TestSplitModes(t *testing.T) {
	for _, c := range []struct {
		list   string
		images []string
		layers string
	}{
		{"", nil, ""},
		{"zstd,full", nil, "zstd,full"},
		{"convert", []string{"convert-estargz", "convert-zstd:chunked"}, ""},
		{"convert-zstd:chunked,open,trace", []string{"convert-zstd:chunked", "open"}, "trace"},
	} {
		images, layers := splitModes(c.list)
		if !slices.Equal(images, c.images) || layers != c.layers {
			t.Errorf("splitModes(%q) = %q, %q; want %q, %q", c.list, images, layers, c.images, c.layers)
		}
	}
}

func TestManifestLayerBytes(t *testing.T) {
	n, err := manifestLayerBytes([]byte(`{"schemaVersion":2,"layers":[{"size":3},{"size":4}]}`))
	if n != 7 || err != nil {
		t.Errorf("manifestLayerBytes = %d, %v; want 7", n, err)
	}
	if _, err := manifestLayerBytes([]byte(`{"schemaVersion":2,"manifests":[]}`)); err == nil {
		t.Error("an index: no error")
	}
}
