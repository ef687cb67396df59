package prefetch

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/lazylayer/lazylayer/overlay"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
)

func readStrace(t *testing.T, name string) []Access {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	require.NoError(t, err)
	defer f.Close()
	accesses, err := ParseStrace(f)
	require.NoError(t, err)
	return accesses
}

func paths(accesses []Access, op Op) []string {
	var out []string
	for _, a := range accesses {
		if a.Op == op {
			out = append(out, a.Path)
		}
	}
	return out
}

// TestParseStracePython reads real `strace -f` output of
// python3 -c 'import json' and checks it against a plain regular
// expression over the same lines.
func TestParseStracePython(t *testing.T) {
	accesses := readStrace(t, "python3-import-json.strace")
	require.Equal(t, Access{Path: "/usr/bin/python3", Op: OpExec}, accesses[0])

	data, err := os.ReadFile("testdata/python3-import-json.strace")
	require.NoError(t, err)
	var want []string
	for _, m := range regexp.MustCompile(`(?m)^\d+ +openat\(AT_FDCWD, "([^"]*)", [^\n]*\) = \d+$`).FindAllSubmatch(data, -1) {
		want = append(want, string(m[1]))
	}
	require.NotEmpty(t, want)
	reads := paths(accesses, OpRead)
	require.Equal(t, want, reads)
	require.Equal(t, "/etc/ld.so.cache", reads[0])
	require.Contains(t, reads, "/usr/lib/python3.11/json/__pycache__/decoder.cpython-311.pyc")
	require.NotContains(t, paths(accesses, OpStat), "/etc/ld.so.preload", "access() failed with ENOENT")
}

// TestParseStraceProcesses reads real `strace -f -tt -y` output of a shell
// that changes directory and runs two children with relative paths.
func TestParseStraceProcesses(t *testing.T) {
	accesses := readStrace(t, "sh-cd-cat-ls.strace")
	require.Equal(t, []string{"/bin/sh", "/usr/bin/cat", "/usr/bin/ls"}, paths(accesses, OpExec),
		"execve lines split by <unfinished ...> are joined with their <... resumed> line")
	reads := paths(accesses, OpRead)
	require.Contains(t, reads, "/usr/lib/os-release")
	require.Contains(t, reads, "/usr/lib/python3.11")
	require.Contains(t, paths(accesses, OpStat), "/usr/lib/python3.11")
	for _, a := range accesses {
		require.True(t, strings.HasPrefix(a.Path, "/"), "%q", a.Path)
	}
}

func TestParseStraceSynthetic(t *testing.T) {
	const trace = `execve("/app/run", ["run"], 0x1 /* 3 vars */) = 0
openat(AT_FDCWD, "/missing", O_RDONLY) = -1 ENOENT (No such file or directory)
open("/etc/with space\"quote\\\x41\101\n", O_RDONLY) = 3
chdir("/srv") = 0
openat(AT_FDCWD, "data/../x", O_RDONLY) = 4
openat(7, "unknown-dir", O_RDONLY) = 5
[pid   12] 12:00:00.000001 openat(AT_FDCWD, "/child", O_RDONLY <unfinished ...>
[pid   13] openat(AT_FDCWD, "/other", O_RDONLY) = 3
[pid   12] 12:00:00.000009 <... openat resumed>) = 6
[pid   13] <... read resumed>"x", 1) = 1
14  openat(AT_FDCWD, "/padded", O_RDONLY|O_CLOEXEC <unfinished ...>
14  <... openat resumed>)             = 7
readlink("/proc/self/exe", "/app/run", 4096) = 8
readlink("/truncated", "aaaaaaaa"..., 8) = 8
openat(AT_FDCWD, "/trunc"..., O_RDONLY) = 3
execve("/failed", [], 0) = -1 ENOENT
+++ exited with 0 +++
--- SIGCHLD {si_signo=SIGCHLD} ---
stat("/etc/x", {st_mode=S_IFREG|0644, st_size=1, ...}) = 0
exit_group(0) = ?
`
	got, err := ParseStrace(strings.NewReader(trace))
	require.NoError(t, err)
	require.Equal(t, []Access{
		{Path: "/app/run", Op: OpExec},
		{Path: "/etc/with space\"quote\\AA\n", Op: OpRead},
		{Path: "/srv/data/../x", Op: OpRead},
		{Path: "/other", Op: OpRead},
		{Path: "/child", Op: OpRead},
		{Path: "/padded", Op: OpRead}, // strace -f -o aligns a resumed call's result
		{Path: "/proc/self/exe", Op: OpStat},
		{Path: "/truncated", Op: OpStat},
		{Path: "/etc/x", Op: OpStat},
	}, got)
}

func TestParseTraceAndWriteTrace(t *testing.T) {
	in := []Access{
		{Path: "/usr/bin/app", Op: OpExec},
		{Path: "/usr/lib/libbig.so", Offset: 4096, Length: 65536},
		{Path: "/etc/odd\nname"},
	}
	var buf bytes.Buffer
	require.NoError(t, WriteTrace(&buf, in))
	require.Equal(t, `{"path":"/usr/bin/app","op":"exec"}`+"\n", strings.SplitAfter(buf.String(), "\n")[0])
	buf.WriteString("\n# a comment\n  /plain/path  \r\n/last/without/newline")
	got, err := ParseTrace(&buf)
	require.NoError(t, err)
	require.Equal(t, append(in, Access{Path: "/plain/path"}, Access{Path: "/last/without/newline"}), got)

	for _, bad := range []string{`{"path":""}`, `{"path":"/x","length":-1}`, `{"path":"/x","op":"write"}`, `{nope`} {
		_, err := ParseTrace(strings.NewReader(bad))
		require.Error(t, err, bad)
	}
}

func TestParseTraceSkipsHugeLines(t *testing.T) {
	in := "/a\n" + strings.Repeat("x", 3*maxTraceLine) + "\n/b\n" + strings.Repeat("y", maxTraceLine+1)
	got, err := ParseTrace(strings.NewReader(in))
	require.NoError(t, err)
	require.Equal(t, []Access{{Path: "/a"}, {Path: "/b"}}, got)
}

func TestFromTrace(t *testing.T) {
	img := overlay.New(fstest.MapFS{
		"usr/bin/app":     file("app"),
		"usr/lib/libx.so": file("x"),
		"lib":             link("usr/lib"),
		"etc":             dir(),
	}, fstest.MapFS{"etc/conf": file("conf")})
	plan, err := FromTrace(context.Background(), img, []Access{
		{Path: "/usr/bin/app", Op: OpExec},
		{Path: "/etc", Op: OpRead},           // a directory: nothing to fetch
		{Path: "/etc/conf", Op: OpStat},      // metadata only
		{Path: "/lib/libx.so", Length: 4096}, // through the link
		{Path: "/missing"},                   // not in the image
		{Path: "usr/lib/libx.so"},            // the whole file, later
		{Path: "/etc/conf"},
	})
	require.NoError(t, err)
	require.Equal(t, []Item{
		{Path: "usr/bin/app", Priority: 0, Reason: ReasonTrace},
		{Path: "usr/lib/libx.so", Length: 4096, Priority: 3, Reason: ReasonTrace},
		{Path: "usr/lib/libx.so", Priority: 5, Reason: ReasonTrace},
		{Layer: 1, Path: "etc/conf", Priority: 6, Reason: ReasonTrace},
	}, plan.Items())

	plan, err = FromTrace(context.Background(), img, []Access{{Path: "/usr/bin/app"}, {Path: "/etc/conf"}}, WithMaxItems(1))
	require.ErrorIs(t, err, ErrLimit)
	require.Equal(t, 1, plan.Len())
}

// TestStaticPlanCoversRecordedStart compares the static plan of an image
// holding the host's python3 with what python3 really opened while
// starting (the strace fixture): every library, the loader cache and the
// encodings modules must be predicted. It copies the host files the
// fixture names, so it runs where python3 is the fixture's (Debian 12).
func TestStaticPlanCoversRecordedStart(t *testing.T) {
	accesses := readStrace(t, "python3-import-json.strace")
	root := t.TempDir()
	var opened []string
	for _, a := range accesses {
		if a.Op == OpStat {
			continue
		}
		fi, err := os.Stat(a.Path)
		if err != nil && a.Op == OpExec {
			t.Skipf("host lacks %s", a.Path)
		}
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		replicate(t, root, a.Path)
		opened = append(opened, realRel(t, a.Path))
	}
	replicate(t, root, "/etc/ld.so.conf")
	replicate(t, root, "/lib64/ld-linux-x86-64.so.2") // the kernel maps it: no openat
	img := overlay.New(os.DirFS(root))

	static, err := FromImageConfig(context.Background(), img, v1.ImageConfig{
		Entrypoint: []string{"python3"}, Env: []string{"LANG=C.UTF-8"},
	})
	require.NoError(t, err)
	planned := map[string]bool{}
	for _, p := range static.Paths(-1) {
		planned[p] = true
	}
	covered := 0
	for _, p := range opened {
		mustPredict := strings.HasSuffix(p, "ld.so.cache") || strings.Contains(p, "linux-gnu/lib") ||
			strings.Contains(p, "/encodings/")
		if planned[p] {
			covered++
		} else {
			require.False(t, mustPredict, "static plan misses %s", p)
		}
	}
	t.Logf("static plan: %d files; it predicts %d of the %d files python3 -c 'import json' opened",
		static.Len(), covered, len(opened))

	// The recorded plan and the static plan merge, export within the
	// budget and come back as the same set of files.
	recorded, err := FromTrace(context.Background(), img, accesses)
	require.NoError(t, err)
	merged := Merge(recorded, static)
	ps := merged.Patterns(-1, 0)
	require.LessOrEqual(t, len(ps.String()), DefaultPatternBudget)
	back, err := FromPatterns(context.Background(), img, ps)
	require.NoError(t, err)
	for _, p := range merged.Paths(-1) {
		require.True(t, ps.Match(p), p)
	}
	require.ElementsMatch(t, merged.Paths(-1), back.Paths(-1), "exact patterns: the same files")
}
