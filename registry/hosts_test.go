package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/registry"
)

func TestParseHosts(t *testing.T) {
	cfg, err := registry.ParseHosts([]byte(`
server = "https://registry-1.docker.io"

[host."http://b:5000"]
  capabilities = ["pull", "resolve"]
  skip_verify = true

[host."https://a:5000/mirror/v2"]
  capabilities = ["pull"]
  override_path = true
  [host."https://a:5000/mirror/v2".header]
    x-ignored = "yes"
`))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%+v %+v", *cfg.Server, cfg.Hosts)
	want := `{Host:https://registry-1.docker.io Capabilities:7 SkipVerify:false OverridePath:false} ` +
		`[{Host:http://b:5000 Capabilities:3 SkipVerify:true OverridePath:false} {Host:https://a:5000/mirror/v2 Capabilities:1 SkipVerify:false OverridePath:true}]`
	if got != want {
		t.Errorf("ParseHosts:\n got %s\nwant %s", got, want)
	}
	for _, bad := range []string{
		`server = 1`, `[host."ftp://x"]`, `[host."http://x"]` + "\ncapabilities = [\"fly\"]", `server = "https://u:p@x"`,
		strings.Repeat("#", registry.MaxHostsFileSize+1),
	} {
		if _, err := registry.ParseHosts([]byte(bad)); !errors.Is(err, registry.ErrBadHostsFile) {
			t.Errorf("ParseHosts(%.40q): %v, want ErrBadHostsFile", bad, err)
		}
	}
	var many bytes.Buffer
	for i := range registry.MaxHosts + 1 {
		fmt.Fprintf(&many, "[host.\"http://m%d\"]\n", i)
	}
	if _, err := registry.ParseHosts(many.Bytes()); !errors.Is(err, registry.ErrBadHostsFile) {
		t.Errorf("ParseHosts of %d hosts: %v", registry.MaxHosts+1, err)
	}
}

func FuzzParseHosts(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := registry.ParseHosts(data)
		if err != nil {
			if !errors.Is(err, registry.ErrBadHostsFile) {
				t.Fatalf("error %v is not ErrBadHostsFile", err)
			}
			return
		}
		if len(cfg.Hosts) > registry.MaxHosts {
			t.Fatalf("%d hosts", len(cfg.Hosts))
		}
		for _, h := range cfg.Hosts {
			if !strings.HasPrefix(h.Host, "http://") && !strings.HasPrefix(h.Host, "https://") {
				t.Fatalf("host %q", h.Host)
			}
		}
	})
}

// Pulls go to the mirror first, with the ns parameter, for what its
// capabilities allow; what the mirror lacks comes from the registry.
// Pushes never go to the mirror.
func TestMirrors(t *testing.T) {
	upstream, mirror := newServer(t), newServer(t)
	im := newTestImage(4 << 10)
	im.push(t, repository(t, newClient(t), upstream.Host+"/a/b:v1"))
	im.push(t, repository(t, newClient(t), mirror.Host+"/a/b:v1"))
	other := newTestImage(5 << 10) // only upstream has it
	other.push(t, repository(t, newClient(t), upstream.Host+"/a/b:v2"))
	upstream.requests()
	mirror.requests()

	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, upstream.Host), 0o755)
	os.WriteFile(filepath.Join(dir, upstream.Host, "hosts.toml"), []byte(fmt.Sprintf(`
server = "%s"
[host."%s"]
  capabilities = ["pull", "resolve"]
`, upstream.URL, mirror.URL)), 0o644)
	c := newClient(t, registry.WithHostsDir(dir))
	testPull(t, repository(t, c, upstream.Host+"/a/b:v1"), im)
	for _, l := range upstream.requests() {
		if l.Method != http.MethodHead { // Has asks the registry
			t.Errorf("the registry got %s %s, which the mirror serves", l.Method, l.Path)
		}
	}
	got := mirror.requests()
	if len(got) == 0 {
		t.Fatal("the mirror got no request")
	}
	for _, l := range got {
		if q, _ := url.ParseQuery(l.Query); q.Get("ns") != upstream.Host {
			t.Errorf("mirror request %s %s?%s without ns", l.Method, l.Path, l.Query)
		}
	}
	testPull(t, repository(t, c, upstream.Host+"/a/b:v2"), other)
	if len(upstream.requests()) == 0 || len(mirror.requests()) == 0 {
		t.Error("what the mirror lacks did not come from the registry after the mirror")
	}
	// The same through WithMirrors, with a mirror that only pulls: tags
	// resolve at the registry.
	c = newClient(t, registry.WithMirrors(upstream.Host, registry.Mirror{Host: mirror.URL, Capabilities: registry.CapPull}))
	r := repository(t, c, upstream.Host+"/a/b:v1")
	desc, err := r.Resolve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(mirror.requests()); n != 0 {
		t.Errorf("a pull-only mirror got %d requests to resolve a tag", n)
	}
	if _, err := r.Manifest(context.Background(), im.manifestDesc); err != nil {
		t.Fatal(err)
	}
	if n := len(mirror.requests()); n != 1 {
		t.Errorf("the mirror got %d requests for a manifest by digest, want 1", n)
	}
	_ = desc
}

// A mirror that fails part-way through a blob hands the rest to the
// registry.
func TestMirrorFallbackMidBlob(t *testing.T) {
	upstream, mirror := newServer(t), newServer(t)
	im := newTestImage(64 << 10)
	im.push(t, repository(t, newClient(t), upstream.Host+"/a/b:v1"))
	im.push(t, repository(t, newClient(t), mirror.Host+"/a/b:v1"))
	mirror.setWrap(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		http.Error(w, "down", http.StatusBadGateway)
	})
	c := newClient(t, registry.WithMirrors(upstream.Host, registry.Mirror{Host: mirror.URL}))
	r := repository(t, c, upstream.Host+"/a/b:v1")
	f, err := r.Blob(context.Background(), im.layerDesc)
	if err != nil {
		t.Fatal(err)
	}
	if got := readBlob(t, f); !bytes.Equal(got, im.layer) {
		t.Fatal("wrong bytes")
	}
	if len(mirror.requests()) == 0 || len(upstream.requests()) == 0 {
		t.Error("the blob did not go to the mirror first, then the registry")
	}
}
