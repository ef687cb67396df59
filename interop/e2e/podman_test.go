package e2e

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/internal/tooltest"
)

// podman runs Debian's podman on a store of the test's own.
type podman struct {
	path   string
	box    *tooltest.Sandbox
	env    []string
	driver string
}

// newPodman returns a podman with partial pulls enabled, over the overlay
// driver (the vfs driver cannot apply a partial layer).
func newPodman(t *testing.T) *podman { return newPodmanStore(t, "overlay", true) }

// newPodmanStore returns a podman whose store uses the storage driver
// driver, with partial pulls enabled if partial.
func newPodmanStore(t *testing.T, driver string, partial bool) *podman {
	t.Helper()
	p := &podman{path: tooltest.Look(t, "podman", "podman"), box: tooltest.NewSandbox(t), driver: driver}
	conf := p.box.Path("storage.conf")
	err := os.WriteFile(conf, []byte(`[storage]
driver = "`+driver+`"
graphroot = "`+p.box.Path("root")+`"
runroot = "`+p.box.Path("runroot")+`"
[storage.options]
pull_options = {enable_partial_images = "`+strconv.FormatBool(partial)+`"}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p.env = []string{"CONTAINERS_STORAGE_CONF=" + conf}
	return p
}

func (p *podman) run(t *testing.T, args ...string) string {
	t.Helper()
	return p.box.Run(t, p.env, p.path, p.args(args...)...)
}

// args returns the arguments that run podman with args on the test's
// store.
func (p *podman) args(args ...string) []string {
	global := []string{
		"--root", p.box.Path("root"), "--runroot", p.box.Path("runroot"), "--tmpdir", p.box.Path("libpod"),
		"--storage-driver", p.driver, "--events-backend", "none", "--cgroup-manager", "cgroupfs",
	}
	return append(global, args...)
}

// pull pulls im from repo through the proxy, over plain HTTP, and returns
// the directory that holds its layer's files and the requests for its
// layer.
func (p *podman) pull(t *testing.T, px *proxy, im *image, repo string) (string, []request) {
	t.Helper()
	ref := px.host + "/" + repo
	p.run(t, "pull", "--quiet", "--tls-verify=false", ref)
	reqs := px.takeBlobRequests(im.layerDigest())
	t.Logf("requests for the %d-byte layer:%s", len(im.layer), describeRequests(reqs))
	return strings.TrimSpace(p.run(t, "image", "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", ref)), reqs
}

// TestPodmanPullsPartially pulls our images with podman 4.3
// (containers/storage v1.43), which knows only the first spelling of the
// zstd:chunked annotations and never reads the footer when they are
// there:
//
//   - into an empty store, it asks for the TOC, then for the chunks in
//     one multi-range request, and never for the whole blob; the files
//     come out whole;
//   - a second layer with the same files (and an empty one more) costs one
//     request, for its TOC: the chunks are already in the store;
//   - a layer annotated as our writer did before, with the current
//     spelling only, is pulled whole with a plain GET.
func TestPodmanPullsPartially(t *testing.T) {
	pm := newPodman(t)
	reg := startRegistry(t)
	px := startProxy(t, reg.URL())

	first := buildImage(t, baseFiles())
	second := buildImage(t, append(baseFiles(), file{"data/empty", nil}))
	third := buildImage(t, append(baseFiles(), file{"data/other", nil})).withNewKeysOnly(t)
	first.push(t, reg, "e2e/first", "v1")
	second.push(t, reg, "e2e/second", "v1")
	third.push(t, reg, "e2e/third", "v1")

	t.Run("empty store", func(t *testing.T) {
		dir, reqs := pm.pull(t, px, first, "e2e/first:v1")
		tocAsked, chunksAsked := false, false
		for _, r := range reqs {
			switch {
			case r.ranges() == 0:
				t.Errorf("a %s without Range: the layer was pulled whole", r.Method)
			case r.Range == first.tocRange(t):
				tocAsked = true
			case r.ranges() > 1 && r.end() > 0 && r.end() <= first.dataEnd(t):
				chunksAsked = true
			default:
				t.Errorf("a request for %s: neither the TOC nor chunks", r.Range)
			}
		}
		if !tocAsked || !chunksAsked {
			t.Errorf("want a request for the TOC alone (%s), then one for many chunks", first.tocRange(t))
		}
		first.checkFiles(t, dir)
	})

	t.Run("files already in the store", func(t *testing.T) {
		dir, reqs := pm.pull(t, px, second, "e2e/second:v1")
		if len(reqs) != 1 || reqs[0].Range != second.tocRange(t) {
			t.Errorf("want one request, for the TOC (%s)", second.tocRange(t))
		}
		second.checkFiles(t, dir)
	})

	t.Run("current keys only", func(t *testing.T) {
		dir, reqs := pm.pull(t, px, third, "e2e/third:v1")
		if len(reqs) != 1 || reqs[0].ranges() != 0 || reqs[0].Bytes != int64(len(third.layer)) {
			t.Errorf("want one GET of the whole layer: podman 4.3 does not know the current keys")
		}
		third.checkFiles(t, dir)
	})
}
