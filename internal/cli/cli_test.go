package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// lazylayer runs the command line args in-process and returns its exit
// code and outputs.
func lazylayer(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Run(context.Background(), append([]string{"--hosts-dir", t.TempDir()}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// mustRun runs args and fails the test unless they succeed.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := lazylayer(t, args...)
	if code != exitOK {
		t.Fatalf("lazylayer %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// tarOf returns a tar of files, name to contents; a name ending in "/"
// is a directory, and contents starting with "->" make a symlink.
func tarOf(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		data := files[n]
		h := &tar.Header{Name: n, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(data))}
		switch {
		case strings.HasSuffix(n, "/"):
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		case strings.HasPrefix(data, "->"):
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, data[2:], 0
		case strings.HasPrefix(n, "bin/"):
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(data))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dockerArchive writes a docker-save archive of an image of layers,
// tagged app:v1, and returns its path.
func dockerArchive(t *testing.T, entrypoint []string, layers ...map[string]string) string {
	var members []struct {
		name string
		data []byte
	}
	add := func(name string, data []byte) {
		members = append(members, struct {
			name string
			data []byte
		}{name, data})
	}
	var layerNames []string
	var diffIDs []digest.Digest
	for i, files := range layers {
		data := tarOf(t, files)
		name := filepath.Join("layer"+string(rune('0'+i)), "layer.tar")
		add(name, data)
		layerNames = append(layerNames, name)
		diffIDs = append(diffIDs, digest.FromBytes(data))
	}
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": entrypoint, "Env": []string{"PATH=/bin"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	add("config.json", config)
	manifest, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{"app:v1"}, "Layers": layerNames}})
	add("manifest.json", manifest)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data))})
		tw.Write(m.data)
	}
	tw.Close()
	path := filepath.Join(t.TempDir(), "app.tar")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadVerbsOnAnArchive(t *testing.T) {
	archive := "docker-archive:" + dockerArchive(t, []string{"/bin/app"},
		map[string]string{"bin/": "", "bin/app": "#!/bin/sh\necho hi\n", "bin/sh": "shell", "etc/": "", "etc/hostname": "base\n", "etc/motd": "gone"},
		map[string]string{"etc/": "", "etc/hostname": "top\n", "etc/.wh.motd": "", "etc/link": "->hostname"},
	)
	if got := mustRun(t, "cat", archive, "/etc/hostname"); got != "top\n" {
		t.Errorf("cat: %q", got)
	}
	ls := mustRun(t, "ls", archive, "/etc")
	if !strings.Contains(ls, "hostname") || strings.Contains(ls, "motd") || !strings.Contains(ls, "link -> hostname") {
		t.Errorf("ls /etc:\n%s", ls)
	}
	dest := t.TempDir()
	mustRun(t, "cp", archive, "/", dest)
	if data, err := os.ReadFile(filepath.Join(dest, "etc/link")); err != nil || string(data) != "top\n" {
		t.Errorf("cp: etc/link reads %q, %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(dest, "etc/motd")); !os.IsNotExist(err) {
		t.Errorf("cp copied a whited-out file: %v", err)
	}
	if plan := mustRun(t, "plan", archive); !strings.Contains(plan, "bin/app") || !strings.Contains(plan, "bin/sh") {
		t.Errorf("plan:\n%s", plan)
	}
	if code, _, errOut := lazylayer(t, "cat", archive, "/etc/nothing"); code != exitFailure || !strings.Contains(errOut, "etc/nothing") {
		t.Errorf("cat of a missing file: exit %d, %s", code, errOut)
	}
	if code, _, _ := lazylayer(t, "cat", archive); code != exitUsage {
		t.Errorf("cat without a path: exit %d, want %d", code, exitUsage)
	}
}

func TestConvertThenReadLazily(t *testing.T) {
	archive := "docker-archive:" + dockerArchive(t, []string{"/bin/app"},
		map[string]string{"bin/": "", "bin/app": "#!/bin/sh\necho hi\n", "bin/sh": "shell", "etc/": "", "etc/hostname": "base\n", "usr/": "", "usr/big": strings.Repeat("data ", 100000)},
		map[string]string{"etc/": "", "etc/hostname": "top\n"},
	)
	for _, format := range []string{"estargz", "zstd:chunked"} {
		t.Run(format, func(t *testing.T) {
			layout := "oci:" + filepath.Join(t.TempDir(), "layout") + ":v1"
			out := mustRun(t, "convert", "--format", format, archive, layout)
			if !strings.Contains(out, "2 layers,") {
				t.Errorf("convert printed %q", out)
			}
			code, out, errOut := lazylayer(t, "--json", "inspect", layout)
			if code != exitOK {
				t.Fatalf("inspect: exit %d: %s", code, errOut)
			}
			var res inspectResult
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("inspect --json: %v\n%s", err, out)
			}
			if len(res.Layers) != 2 || res.Patterns == 0 || res.PatternFiles == 0 {
				t.Errorf("inspect: %+v", res)
			}
			for _, l := range res.Layers {
				if l.Format != strings.ReplaceAll(format, ":", "") && l.Format != format || l.Error != "" || l.Files == 0 {
					t.Errorf("inspect: layer %+v", l)
				}
			}
			if got := mustRun(t, "cat", layout, "etc/hostname"); got != "top\n" {
				t.Errorf("cat: %q", got)
			}
			if out := mustRun(t, "verify", layout); strings.Count(out, ": ok") != 2 {
				t.Errorf("verify:\n%s", out)
			}
			// Converting the converted image again changes nothing.
			again := "oci:" + filepath.Join(t.TempDir(), "again") + ":v1"
			mustRun(t, "convert", "--format", format, layout, again)
			if a, b := mustRun(t, "--json", "inspect", layout), mustRun(t, "--json", "inspect", again); manifestOf(t, a) != manifestOf(t, b) {
				t.Errorf("converting again changed the manifest: %s, then %s", manifestOf(t, a), manifestOf(t, b))
			}
		})
	}
}

func manifestOf(t *testing.T, inspectJSON string) string {
	var res inspectResult
	if err := json.Unmarshal([]byte(inspectJSON), &res); err != nil {
		t.Fatal(err)
	}
	return res.Manifest
}

func TestVerifyFindsDamage(t *testing.T) {
	archive := "docker-archive:" + dockerArchive(t, nil, map[string]string{"usr/": "", "usr/big": strings.Repeat("data ", 100000)})
	dir := filepath.Join(t.TempDir(), "layout")
	mustRun(t, "convert", "--prefetch", "none", archive, "oci:"+dir+":v1")
	var res inspectResult
	if err := json.Unmarshal([]byte(mustRun(t, "--json", "inspect", "oci:"+dir+":v1")), &res); err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(res.Layers[0].Digest, "sha256:"))
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[100] ^= 0xff // file data, before the index
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := lazylayer(t, "verify", "oci:"+dir+":v1")
	if code != exitMismatch || !strings.Contains(out, "FAILED") || !strings.Contains(errOut, "layer 0") {
		t.Errorf("verify of a damaged layer: exit %d\n%s%s", code, out, errOut)
	}
}

func TestConvertSOCI(t *testing.T) {
	archive := "docker-archive:" + dockerArchive(t, []string{"/bin/app"},
		map[string]string{"bin/": "", "bin/app": "#!/bin/sh\necho hi\n", "bin/sh": "shell", "usr/": "", "usr/big": strings.Repeat("data ", 100000)},
		map[string]string{"etc/": "", "etc/hostname": "top\n"},
	)
	dir := filepath.Join(t.TempDir(), "layout")
	code, out, errOut := lazylayer(t, "--json", "convert", "--soci", "--soci-min-layer-size", "8KiB", "--soci-span-size", "64KiB", archive, "oci:"+dir+":v1")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res convertResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Descriptor.MediaType != "application/vnd.oci.image.index.v1+json" || len(res.Layers) != 2 {
		t.Fatalf("%+v", res)
	}
	for _, l := range res.Layers {
		// The first layer (some 500 KB) is indexed, the second too small.
		if indexed := l.Note == ""; indexed != (l.Index == 0) || indexed && l.Written == 0 {
			t.Errorf("layer %+v", l)
		}
	}
	if code, _, errOut := lazylayer(t, "convert", "--soci", "--format", "zstd:chunked", archive, "oci:"+dir+":v2"); code != exitUsage {
		t.Errorf("--soci with --format: exit %d: %s", code, errOut)
	}

	// The read verbs open the indexed layer lazily, with its zTOC.
	var inspect inspectResult
	if err := json.Unmarshal([]byte(mustRun(t, "--json", "inspect", "oci:"+dir+":v1")), &inspect); err != nil {
		t.Fatal(err)
	}
	if l := inspect.Layers[0]; l.Format != "soci" || l.Error != "" || l.Files == 0 {
		t.Errorf("inspect: indexed layer %+v", l)
	}
	if l := inspect.Layers[1]; l.Format != "none" || l.Error == "" {
		t.Errorf("inspect: layer without a zTOC %+v", l)
	}
	if got := mustRun(t, "cat", "oci:"+dir+":v1", "usr/big"); got != strings.Repeat("data ", 100000) {
		t.Errorf("cat: %d bytes", len(got))
	}
	if out := mustRun(t, "ls", "oci:"+dir+":v1", "/bin"); !strings.Contains(out, "app") {
		t.Errorf("ls:\n%s", out)
	}
	if out := mustRun(t, "verify", "oci:"+dir+":v1"); !strings.Contains(out, "soci: ok") {
		t.Errorf("verify:\n%s", out)
	}
}
