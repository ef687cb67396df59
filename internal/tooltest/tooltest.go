// Package tooltest runs the reference tools (podman, skopeo, containerd)
// in tests: it finds them, skips a test whose tool is missing, naming the
// Debian package that installs it, unless LAZYLAYER_REQUIRE_TOOLS=1 (set
// by .ci/run) makes that a failure, and runs them in a Sandbox that leaves
// nothing behind.
package tooltest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RequireEnv names the environment variable that, set to 1, makes a
// missing tool a test failure instead of a skip (.ci/run sets it).
const RequireEnv = "LAZYLAYER_REQUIRE_TOOLS"

// CommandTimeout bounds each run of a tool.
const CommandTimeout = 3 * time.Minute

// Missing skips t for want of what, which Debian's package pkg installs,
// or fails it when the environment variable env is 1.
func Missing(t testing.TB, env, what, pkg string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s is missing (apt-get install %s): %v", what, pkg, err)
	if os.Getenv(env) == "1" {
		t.Fatalf("%s=1 but %s", env, msg)
	}
	t.Skip(msg)
}

// Look returns the path of the program name, which Debian's package pkg
// installs, or skips or fails t as Missing does under RequireEnv.
func Look(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Missing(t, RequireEnv, name, pkg, err)
	}
	return path
}

// A Sandbox is where a test's tools keep their state: a temporary
// directory whose run, varlib and tmp directories stand in for /run,
// /var/lib and TMPDIR.
type Sandbox struct {
	dir     string
	unshare string
}

// NewSandbox makes a sandbox that is removed when t ends.
func NewSandbox(t testing.TB) *Sandbox {
	t.Helper()
	unshare := Look(t, "unshare", "util-linux")
	// A short path: podman refuses a run root over 50 bytes, and a unix
	// socket's path must fit in 108.
	dir, err := os.MkdirTemp("", "lazylayer-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	s := &Sandbox{dir: dir, unshare: unshare}
	for _, d := range []string{"run", "varlib", "tmp"} {
		if err := os.Mkdir(s.Path(d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Path returns the path of name inside the sandbox.
func (s *Sandbox) Path(name string) string { return filepath.Join(s.dir, name) }

// Command returns a command that runs the program at path in a mount
// namespace of its own, where the sandbox's directories are bound over
// /run and /var/lib (the tools keep caches and run state there, as root)
// and TMPDIR points into it. Mounts the program makes go with it. env is
// added to the environment.
func (s *Sandbox) Command(ctx context.Context, env []string, path string, args ...string) *exec.Cmd {
	const bind = `mount --bind "$1" /run && mount --bind "$2" /var/lib && shift 2 && exec "$@"`
	argv := append([]string{"--mount", "--propagation", "private", "sh", "-c", bind, "sh", s.Path("run"), s.Path("varlib"), path}, args...)
	cmd := exec.CommandContext(ctx, s.unshare, argv...)
	cmd.Env = append(append(os.Environ(), "TMPDIR="+s.Path("tmp")), env...)
	return cmd
}

// Run runs the program at path in the sandbox and returns its standard
// output, failing the test if it fails.
func (s *Sandbox) Run(t testing.TB, env []string, path string, args ...string) string {
	t.Helper()
	out, err := s.Try(t, nil, env, path, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Try is Run with stdin, if not nil, as the program's standard input; it
// returns the program's failure, with its error output, within
// CommandTimeout.
func (s *Sandbox) Try(t testing.TB, stdin io.Reader, env []string, path string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), CommandTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := s.Command(ctx, env, path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(path), strings.Join(args, " "), err, Tail(stderr.String()))
	}
	return stdout.String(), nil
}

// Tail returns the end of a program's output, where it says why it
// failed.
func Tail(s string) string {
	const max = 4 << 10
	if len(s) > max {
		return "..." + s[len(s)-max:]
	}
	return s
}

// WaitListen returns once the unix socket at address accepts connections,
// failing t if the program named what exits first (exited is closed) or
// 30 s pass; the failure quotes the end of the program's output, log.
func WaitListen(t testing.TB, what, address string, exited <-chan struct{}, log fmt.Stringer) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if conn, err := net.Dial("unix", address); err == nil {
			conn.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before it listened on %s:\n%s", what, address, Tail(log.String()))
		case <-deadline:
			t.Fatalf("%s did not listen on %s in 30s:\n%s", what, address, Tail(log.String()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
