package localregistry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// startOrSkip starts the registry, skipping the test where the binary is
// missing unless LAZYLAYER_REQUIRE_REGISTRY=1.
func startOrSkip(t *testing.T, opts ...Option) *Registry {
	t.Helper()
	r, err := Start(context.Background(), opts...)
	if errors.Is(err, ErrNotInstalled) && os.Getenv("LAZYLAYER_REQUIRE_REGISTRY") != "1" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

func get(t *testing.T, url, rng, user, pass string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func TestPushAndRangedGet(t *testing.T) {
	r := startOrSkip(t)
	if !strings.HasPrefix(r.URL(), "http://127.0.0.1:") || r.URL() != "http://"+r.Host() {
		t.Errorf("URL %q, Host %q", r.URL(), r.Host())
	}
	data := []byte("localregistry blob")
	d, err := r.Push(context.Background(), "a/b", data)
	if err != nil {
		t.Fatal(err)
	}
	status, body := get(t, r.BlobURL("a/b", d), "bytes=5-12", "", "")
	if status != http.StatusPartialContent || !bytes.Equal(body, data[5:13]) {
		t.Fatalf("ranged GET = %d %q, want 206 %q", status, body, data[5:13])
	}
}

func TestPushManifest(t *testing.T) {
	r := startOrSkip(t)
	ctx := context.Background()
	config := []byte("{}")
	d, err := r.Push(ctx, "a/b", config)
	if err != nil {
		t.Fatal(err)
	}
	const mediaType = "application/vnd.oci.image.manifest.v1+json"
	manifest := []byte(`{"schemaVersion":2,"mediaType":"` + mediaType + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		d.String() + `","size":2},"layers":[]}`)
	md, err := r.PushManifest(ctx, "a/b", "v1", mediaType, manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"v1", md.String()} {
		req, err := http.NewRequest(http.MethodGet, r.URL()+"/v2/a/b/manifests/"+ref, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", mediaType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, manifest) {
			t.Errorf("GET manifest %s = %d %q, %v", ref, resp.StatusCode, body, err)
		}
	}
	if _, err := r.PushManifest(ctx, "a/b", "v2", mediaType, []byte("{not a manifest")); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("pushing a malformed manifest: %v, want a 400 error", err)
	}
}

func TestBasicAuth(t *testing.T) {
	r := startOrSkip(t, WithBasicAuth("alice", "s3cret"))
	data := []byte("behind auth")
	d, err := r.Push(context.Background(), "a/b", data)
	if err != nil {
		t.Fatal(err)
	}
	if status, body := get(t, r.BlobURL("a/b", d), "", "alice", "s3cret"); status != http.StatusOK || !bytes.Equal(body, data) {
		t.Errorf("GET with credentials = %d %q", status, body)
	}
	if status, _ := get(t, r.BlobURL("a/b", d), "", "alice", "wrong"); status != http.StatusUnauthorized {
		t.Errorf("GET with a wrong password = %d, want 401", status)
	}
	anonymous := &Client{URL: r.URL()}
	if _, err := anonymous.Push(context.Background(), "a/b", data); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("push without credentials: %v, want a 401 error", err)
	}
}

func TestStorageDirAndClose(t *testing.T) {
	storage := t.TempDir()
	var log bytes.Buffer
	r, err := Start(context.Background(), WithStorageDir(storage), WithLog(&log))
	if errors.Is(err, ErrNotInstalled) && os.Getenv("LAZYLAYER_REQUIRE_REGISTRY") != "1" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Push(context.Background(), "a/b", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	tempDir := r.tempDir
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat(tempDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary directory survives Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(storage, "docker", "registry", "v2", "repositories", "a", "b")); err != nil {
		t.Errorf("storage directory lacks the pushed repository: %v", err)
	}
	if _, err := http.Get(r.URL() + "/v2/"); err == nil {
		t.Error("registry still answers after Close")
	}
}

func TestNotInstalled(t *testing.T) {
	_, err := Start(context.Background(), WithBinary(filepath.Join(t.TempDir(), "no-such-registry")))
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Start with a missing binary: %v, want ErrNotInstalled", err)
	}
}

func TestStartFailureQuotesOutput(t *testing.T) {
	script := filepath.Join(t.TempDir(), "registry")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'bad config line 3' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), WithBinary(script))
	if err == nil || errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "bad config line 3") {
		t.Fatalf("Start with a failing binary: %v, want an error quoting its output", err)
	}
}

func TestStartHonoursContext(t *testing.T) {
	script := filepath.Join(t.TempDir(), "registry")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, WithBinary(script)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a cancelled context: %v, want context.Canceled", err)
	}
}
