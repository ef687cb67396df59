package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/lazylayer/lazylayer/internal/useragent"
	"github.com/spf13/cobra"
)

// Exit codes, documented in the root command's help.
const (
	exitOK       = 0
	exitFailure  = 1 // the work failed; the message names the layer and the reason
	exitUsage    = 2 // a flag or an argument is wrong
	exitMismatch = 3 // verify found bytes that do not match their digests
)

// exitError carries the exit code an error ends the command with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, args...)}
}

// cli is what every verb shares: the output streams and the global flags.
type cli struct {
	stdout, stderr io.Writer
	json           bool
	globalFlags
}

// Run runs the lazylayer command line args (without the program name)
// and returns the process's exit code. Output goes to stdout, progress,
// costs and errors to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	root := c.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "lazylayer: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "lazylayer",
		Short: "Convert container images to seekable formats and read them lazily",
		Long: `lazylayer converts container images to seekable layer formats, eStargz and
zstd:chunked, which runtimes can start from before the image is pulled, and
reads images lazily: it lists, prints and copies files of an image in a
registry while fetching only the byte ranges they need.

Images are named as skopeo names them:

  REF, docker://REF         an image in a registry: ubuntu, ubuntu:24.04,
                            localhost:5000/app@sha256:..., ghcr.io/org/app:tag
  oci:DIR[:TAG]             an OCI image layout directory
  docker-archive:PATH       a "docker save" or "podman save" archive (read only)

Registry credentials come from the docker config ($DOCKER_CONFIG/config.json,
~/.docker/config.json, $REGISTRY_AUTH_FILE, podman's auth.json) and its
credential helpers. Registry mirrors come from containerd's hosts.toml files
under --hosts-dir.

Exit status: 0 on success, 1 when the work failed (the message names the
layer and the reason), 2 for a wrong flag or argument, 3 when verify found
bytes that do not match their digests.`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{exitUsage, err} })
	pf := root.PersistentFlags()
	pf.BoolVar(&c.json, "json", false, "print results as JSON, for scripts")
	c.globalFlags.register(pf)
	for _, cmd := range c.verbs() {
		root.AddCommand(cmd)
	}
	return root
}

func version() string { return useragent.Version() }

// args returns a cobra argument check whose failures exit with exitUsage.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return &exitError{exitUsage, err}
		}
		return nil
	}
}

// isTerminal reports whether w is a terminal, where progress bars go;
// elsewhere progress is plain lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
