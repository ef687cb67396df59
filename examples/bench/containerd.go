package main

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lazylayer/lazylayer/internal/tooltest"
)

// containerd is a containerd daemon of the run's own, for ctr-remote,
// which converts only what containerd's content store holds.
type containerd struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	log     tailBuffer
	ctr     string // ctr-remote
	address string // its socket
}

// startContainerd runs containerd with its root, state and socket under
// dir until Close. Its garbage collector runs (containerd's image
// service needs it), so content of a removed image goes away.
func startContainerd(ctx context.Context, dir, ctr string) (*containerd, error) {
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return nil, err
	}
	c := &containerd{ctr: ctr, address: filepath.Join(dir, "c.sock"), exited: make(chan struct{})}
	config := tooltest.ContainerdConfig(dir, c.address, true, "")
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	c.cmd = exec.Command(bin, "--config", configPath)
	c.cmd.Stdout, c.cmd.Stderr = &c.log, &c.log
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { c.cmd.Wait(); close(c.exited) }()
	deadline := time.After(30 * time.Second)
	for {
		if conn, err := net.Dial("unix", c.address); err == nil {
			conn.Close()
			return c, nil
		}
		select {
		case <-c.exited:
			return nil, fmt.Errorf("containerd exited before it listened:\n%s", c.log.String())
		case <-deadline:
			c.Close()
			return nil, fmt.Errorf("containerd did not listen on %s in 30s:\n%s", c.address, c.log.String())
		case <-ctx.Done():
			c.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close stops the daemon and waits for it.
func (c *containerd) Close() error {
	c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
	return nil
}

// command returns ctr-remote with args, against the daemon.
func (c *containerd) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, c.ctr, append([]string{"--address", c.address}, args...)...)
}

// run runs ctr-remote and returns its output.
func (c *containerd) run(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := c.command(ctx, args...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ctr-remote %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// importLayout imports the OCI layout dir, tagged "src", as name:src.
func (c *containerd) importLayout(ctx context.Context, dir, name string) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarDir(pw, dir)) }()
	_, err := c.run(ctx, pr, "images", "import", "--base-name", name, "--no-unpack", "-")
	pr.Close()
	return err
}

// tarDir writes the files under dir to w as a tar stream, as ctr import
// reads an OCI layout.
func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		return err
	}
	return tw.Close()
}

// layerBytes returns the layer bytes of the image ref, a manifest.
func (c *containerd) layerBytes(ctx context.Context, ref string) (int64, error) {
	out, err := c.run(ctx, nil, "images", "ls")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == ref {
			m, err := c.run(ctx, nil, "content", "get", f[2])
			if err != nil {
				return 0, err
			}
			return manifestLayerBytes([]byte(m))
		}
	}
	return 0, fmt.Errorf("ctr-remote images ls: no %s in\n%s", ref, out)
}

// ctrRemote is ctr-remote image convert --estargz --oci, content store to
// content store, in a containerd of its own started on first use. Its
// CPU time adds the daemon's, which serves and stores the content.
func (b *imageBench) ctrRemote() side {
	s := side{name: "ctr-remote image convert --estargz --oci", note: "its defaults: gzip level 9, 4 MiB chunks; no --estargz-record-in, so no prioritised files; CPU includes containerd's"}
	ctr, err := exec.LookPath("ctr-remote")
	if err != nil {
		s.skip = "stargz-snapshotter"
		return s
	}
	if _, err := exec.LookPath("containerd"); err != nil {
		s.skip = "containerd"
		return s
	}
	var c *containerd
	run := 0
	s.run = func(ctx context.Context, _ string) (usage, error) {
		if c == nil {
			dir := filepath.Join(b.dir, "containerd")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return usage{}, err
			}
			var err error
			if c, err = startContainerd(ctx, dir, ctr); err != nil {
				return usage{}, err
			}
			b.closers = append(b.closers, c.Close)
			if err := c.importLayout(ctx, b.src, "bench/src"); err != nil {
				return usage{}, err
			}
		}
		run++
		dst := fmt.Sprintf("bench/estargz:%d", run)
		cpu0, err := procCPU(c.cmd.Process.Pid)
		if err != nil {
			return usage{}, err
		}
		u, err := runMeasured(ctx, c.command(ctx, "images", "convert", "--estargz", "--oci", "bench/src:src", dst))
		if err != nil {
			return u, err
		}
		cpu1, err := procCPU(c.cmd.Process.Pid)
		if err != nil {
			return u, err
		}
		u.cpu += cpu1 - cpu0
		if u.out, err = c.layerBytes(ctx, dst); err != nil {
			return u, err
		}
		// Removed, so that the next run writes every blob anew.
		_, err = c.run(ctx, nil, "images", "rm", "--sync", dst)
		return u, err
	}
	return s
}
