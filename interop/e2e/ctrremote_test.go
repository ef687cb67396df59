package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/internal/tooltest"
	"github.com/opencontainers/go-digest"
)

// containerd is a containerd daemon of the test's own, for ctr-remote,
// which reads layers from containerd's content store only.
type containerd struct {
	box     *tooltest.Sandbox
	ctr     string // the client: ctr-remote or ctr
	address string // its socket
}

// startContainerd runs containerd with its root, state and socket in a
// sandbox until the test ends, for ctr-remote. Its garbage collector is
// off, so that content ingested without a lease stays.
func startContainerd(t *testing.T) *containerd {
	t.Helper()
	return startContainerdFor(t, tooltest.Look(t, "ctr-remote", "stargz-snapshotter"), false)
}

// startContainerdFor is startContainerd for the client at ctr, with the
// garbage collector on if gc (pulls need it: its leases keep what they
// fetch).
func startContainerdFor(t *testing.T, ctr string, gc bool) *containerd {
	t.Helper()
	path := tooltest.Look(t, "containerd", "containerd")
	c := &containerd{box: tooltest.NewSandbox(t), ctr: ctr}
	c.address = c.box.Path("c.sock")
	config := tooltest.ContainerdConfig(c.box.Path("."), c.address, gc, "")
	configPath := c.box.Path("config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var log bytes.Buffer
	cmd := c.box.Command(ctx, nil, path, "--config", configPath)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cancel(); <-exited })

	tooltest.WaitListen(t, "containerd", c.address, exited, &log)
	return c
}

// run runs the client against the daemon.
func (c *containerd) run(t *testing.T, stdin []byte, args ...string) (string, error) {
	t.Helper()
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	return c.box.Try(t, in, nil, c.ctr, append([]string{"--address", c.address}, args...)...)
}

// ingest stores blob in the content store and returns its digest.
func (c *containerd) ingest(t *testing.T, blob []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(blob)
	if _, err := c.run(t, blob, "content", "ingest", "--expected-digest", d.String(),
		"--expected-size", strconv.Itoa(len(blob)), "e2e-"+d.Encoded()); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestCtrRemoteParsesOurFooter has ctr-remote 0.12 (stargz-snapshotter's
// estargz/zstdchunked reader, which parses only the 48-byte footer) find
// and decode the TOC of our layer from its footer alone: the digest it
// prints is that of our TOC JSON, and the TOC it dumps lists our files.
// The same layer ending in containers/storage's 72-byte footer, as our
// writer wrote it before, is refused.
func TestCtrRemoteParsesOurFooter(t *testing.T) {
	c := startContainerd(t)
	im := buildImage(t, baseFiles())
	f := im.position(t)
	tocJSON, err := zstdchunked.DecompressTOC(im.layer[f.TOCOffset:f.TOCOffset+f.TOCLength], f.TOCUncompressedLength)
	if err != nil {
		t.Fatal(err)
	}

	d := c.ingest(t, im.layer)
	out, err := c.run(t, nil, "images", "get-toc-digest", "--zstdchunked", d.String())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(out), digest.FromBytes(tocJSON).String(); got != want {
		t.Errorf("ctr-remote reads TOC digest %s, want that of our TOC JSON, %s", got, want)
	}
	out, err = c.run(t, nil, "images", "get-toc-digest", "--zstdchunked", "--dump-toc", d.String())
	if err != nil {
		t.Fatal(err)
	}
	var dumped struct {
		Entries []struct{ Name, Type string }
	}
	if err := json.Unmarshal([]byte(out), &dumped); err != nil {
		t.Fatalf("ctr-remote dumped a TOC that is not JSON: %v", err)
	}
	names := map[string]bool{}
	for _, e := range dumped.Entries {
		names[e.Name] = true
	}
	for _, file := range im.files {
		if !names[file.name] {
			t.Errorf("the TOC ctr-remote dumped lacks %s", file.name)
		}
	}

	old := c.ingest(t, im.withNewFooter(t))
	if _, err := c.run(t, nil, "images", "get-toc-digest", "--zstdchunked", old.String()); err == nil || !strings.Contains(err.Error(), "invalid magic number") {
		t.Errorf("the 72-byte footer: %v, want ctr-remote's \"invalid magic number\"", err)
	}
}
