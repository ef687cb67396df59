package prefetch

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/overlay"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
)

// TestImageConfigGoHost plans "go run" of two programs on this machine's
// Go installation and checks the plan against the files of GOROOT the
// real go command opens and runs, recorded with strace: hello world
// (built and run, with an empty cache) and a net/http program (loaded
// only, with "go build -n": the compile reads a subset of what the
// go command loads).
func TestImageConfigGoHost(t *testing.T) {
	const goroot = "/usr/local/go"
	if _, err := os.Stat(goroot + "/bin/go"); err != nil {
		t.Skip("no Go installation in " + goroot)
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("no strace: apt-get install strace")
	}
	if testing.Short() {
		t.Skip("compiles hello world: skipped with -short")
	}
	for _, tc := range []struct {
		name, src string
		args      []string // what strace records
	}{
		{"hello", "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n", []string{"run"}},
		{"net-http", "package main\n\nimport (\n\t\"fmt\"\n\t\"net/http\"\n)\n\nfunc main() { fmt.Println(http.StatusOK) }\n", []string{"build", "-n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "main.go")
			require.NoError(t, os.WriteFile(src, []byte(tc.src), 0o644))
			env := []string{"PATH=" + goroot + "/bin:/usr/bin:/bin", "HOME=" + dir,
				"GOCACHE=" + filepath.Join(dir, "cache"), "GOPATH=" + filepath.Join(dir, "gopath"),
				"GOTOOLCHAIN=local", "GOENV=off", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false"}
			trace := filepath.Join(dir, "strace.txt")
			cmd := exec.Command(strace, append([]string{"-f", "-qq", "-e", "trace=openat,open,execve", "-o", trace,
				goroot + "/bin/go"}, append(tc.args, src)...)...)
			cmd.Env, cmd.Dir = env, dir
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			read := tracedFiles(t, trace, goroot+"/")
			require.NotEmpty(t, read)

			plan, err := FromImageConfig(context.Background(), overlay.New(os.DirFS("/")), v1.ImageConfig{
				Entrypoint: []string{goroot + "/bin/go", "run", src}, Env: env, WorkingDir: dir,
			})
			require.NoError(t, err)
			planned := map[string]bool{}
			var plannedBytes, overBytes int64
			for _, p := range plan.Paths(-1) {
				if !strings.HasPrefix("/"+p, goroot+"/") {
					continue
				}
				planned["/"+p] = true
				fi, err := os.Stat("/" + p)
				require.NoError(t, err)
				plannedBytes += fi.Size()
				if !read["/"+p] {
					overBytes += fi.Size()
				}
			}
			var missing []string
			for f := range read {
				if !planned[f] {
					missing = append(missing, f)
				}
			}
			slices.Sort(missing)
			covered := len(read) - len(missing)
			t.Logf("%s: GOROOT files opened or run: %d; planned: %d files, %.1f MB; covered %d (%.1f%%); "+
				"planned and not opened: %.1f MB (%.1f%% of planned bytes); first missing: %q",
				tc.name, len(read), len(planned), float64(plannedBytes)/1e6, covered,
				100*float64(covered)/float64(len(read)), float64(overBytes)/1e6,
				100*float64(overBytes)/float64(plannedBytes), missing[:min(len(missing), 10)])
			require.GreaterOrEqual(t, covered*100, len(read)*95, "coverage under 95%%")
		})
	}
}

// tracedFiles returns the regular files under prefix that an strace log
// shows opened or executed.
func tracedFiles(t *testing.T, name, prefix string) map[string]bool {
	f, err := os.Open(name)
	require.NoError(t, err)
	defer f.Close()
	accesses, err := ParseStrace(f)
	require.NoError(t, err)
	out := map[string]bool{}
	for _, a := range accesses {
		if a.Op == OpStat || !strings.HasPrefix(a.Path, prefix) {
			continue
		}
		if fi, err := os.Stat(a.Path); err == nil && fi.Mode().IsRegular() {
			out[filepath.Clean(a.Path)] = true
		}
	}
	return out
}
