package snapshotter_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/containerd/v2/pkg/snapshotters"
	"github.com/lazylayer/lazylayer/internal/cli"
	"github.com/lazylayer/lazylayer/internal/dirtar"
	"github.com/lazylayer/lazylayer/internal/simregistry"
	"github.com/lazylayer/lazylayer/internal/tooltest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	startupRuns      = flag.Int("startup.runs", 3, "BenchmarkStartup: cold runs of each configuration")
	startupWorkloads = flag.String("startup.workloads", "python,java-version,java-hello,go-build", "BenchmarkStartup: the workloads to run, comma-separated")
	startupModes     = flag.String("startup.modes", "", `BenchmarkStartup: run only the modes whose names contain one of these comma-separated words ("full,config")`)
	startupRTT       = flag.Duration("startup.rtt", 20*time.Millisecond, "BenchmarkStartup: the link's round-trip time")
	startupBandwidth = flag.String("startup.bw", "50MB/s", "BenchmarkStartup: the link's bandwidth")
	startupCPU       = flag.String("startup.cpuprofile", "", "BenchmarkStartup: write the snapshotter's CPU profile to DIR/WORKLOAD-REPO-RUN.cpu")
	startupHeap      = flag.String("startup.heapprofile", "", "BenchmarkStartup: write the snapshotter's heap profile at its peak to DIR/WORKLOAD-REPO-RUN.heap")
)

// A workload is a real program in an image built from the host's files:
// a base layer of /etc and the shared libraries, and a layer of the
// program's tree.
type workload struct {
	name string
	args []string
	want string // what the output must contain
	// trees are the host paths of the program layer, copied as they
	// are; libs are the programs and libraries whose shared libraries
	// (ldd) go to the base layer.
	trees, libs []string
	files       map[string]string // more files of the program layer
	env         []string
}

const jdk = "/usr/lib/jvm/temurin-25-jdk-amd64"

func workloads() []workload {
	const helloJava = "class Hello { public static void main(String[] a) { System.out.println(\"hello\"); } }\n"
	const helloGo = "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"
	dynload, _ := filepath.Glob("/usr/lib/python3.11/lib-dynload/*.so")
	jdkLibs, _ := filepath.Glob(jdk + "/lib/*.so")
	return []workload{{
		name:  "python",
		args:  []string{"/usr/bin/python3", "-c", `import json, http.server, asyncio, sqlite3, email.mime.text; print("ready")`},
		want:  "ready",
		trees: []string{"/usr/bin/python3", "/usr/bin/python3.11", "/usr/lib/python3.11"},
		libs:  append([]string{"/usr/bin/python3.11"}, dynload...),
	}, {
		name:  "java-version",
		args:  []string{jdk + "/bin/java", "-version"},
		want:  "version",
		trees: []string{jdk},
		libs:  append([]string{jdk + "/bin/java", jdk + "/lib/server/libjvm.so"}, jdkLibs...),
	}, {
		name:  "java-hello",
		args:  []string{jdk + "/bin/java", "/src/Hello.java"},
		want:  "hello",
		trees: []string{jdk},
		libs:  append([]string{jdk + "/bin/java", jdk + "/lib/server/libjvm.so"}, jdkLibs...),
		files: map[string]string{"src/Hello.java": helloJava},
	}, {
		name:  "go-build",
		args:  []string{"/usr/local/go/bin/go", "run", "/src/hello.go"},
		want:  "hello",
		trees: []string{"/usr/local/go"},
		files: map[string]string{"src/hello.go": helloGo},
		env:   []string{"HOME=/root", "GOCACHE=/tmp/gocache", "GOPATH=/tmp/gopath", "GOTOOLCHAIN=local", "GOENV=off", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false"},
	}}
}

// A startup mode is how a workload's image is pulled and mounted.
type startupMode struct {
	name        string
	snapshotter string // "overlayfs": containerd's own, full pull
	repo        string // the repository suffix of the image it pulls
}

var startupModeList = []startupMode{
	{"full pull (overlayfs)", "overlayfs", "plain"},
	{"lazy, no prefetch", "lazylayer", "none"},
	{"lazy + image-config plan", "lazylayer", "config"},
	{"lazy + recorded profile", "lazylayer", "trace"},
}

// startupRun is what one cold start measured.
type startupRun struct {
	total, resolve, pull, run time.Duration // run: pull's end to the first line
	open, mount, prefetch     time.Duration // the snapshotter's stages
	requests                  int           // through the link, to the first line
	bytes                     int64
	planned                   int64         // compressed bytes of the prefetch plan
	cpuFirst, cpuAll          time.Duration // the snapshotter's CPU to the first line, and to all fetched
	rss                       int64         // the snapshotter's peak RSS
}

// BenchmarkStartup times cold container starts of real programs, from
// the pull request to the container's first line of output, with
// containerd 1.6, runc and docker-registry behind a simulated link
// (20 ms RTT, 50 MB/s), through containerd's overlayfs snapshotter (a
// full pull and unpack) and through this snapshotter in three modes.
// Every run starts containerd and the snapshotter on new, empty state.
// It is long (minutes); run it alone:
//
//	go test -run '^$' -bench Startup -benchtime 1x -timeout 2h . [-startup.runs 3] [-startup.workloads python]
func BenchmarkStartup(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	bw, err := simregistry.ParseBandwidth(*startupBandwidth)
	if err != nil {
		b.Fatal(err)
	}
	link := simregistry.Link{RTT: *startupRTT, Bandwidth: bw}
	tooltest.Look(b, "runc", "runc")
	e := &env{box: tooltest.NewSandbox(b), ctr: tooltest.Look(b, "ctr", "containerd"), top: b}
	e.startRegistry(b)
	proxy, err := simregistry.NewProxy(e.reg.URL(), simregistry.WithLink(link))
	if err != nil {
		b.Fatal(err)
	}
	defer proxy.Close()
	shaped := strings.TrimPrefix(proxy.URL(), "http://")
	e.buildSnapshotter(b)
	e.holdNamespace(b)

	type row struct {
		workload, mode string
		runs           []startupRun
	}
	var rows []row
	for _, w := range workloads() {
		if !selected(w.name, *startupWorkloads) {
			continue
		}
		plain, size := e.buildWorkloadImage(b, w)
		refs := map[string]string{"plain": plain}
		for _, prefetch := range []string{"none", "config"} {
			refs[prefetch] = e.reg.Host() + "/" + w.name + "-" + prefetch + ":v1"
			lazylayerCLI(b, "convert", "--prefetch", prefetch, plain, refs[prefetch])
		}
		shape := func(ref string) string { return strings.Replace(ref, e.reg.Host(), shaped, 1) }
		for _, m := range startupModeList {
			if !selected(m.name, *startupModes) {
				continue
			}
			if m.repo == "trace" && refs["trace"] == "" {
				// Record a run of the image without a plan, and
				// convert with the profile.
				trace := e.recordTrace(b, w, shape(refs["none"]), proxy)
				refs["trace"] = e.reg.Host() + "/" + w.name + "-trace:v1"
				lazylayerCLI(b, "optimize", "--trace", trace, plain, refs["trace"])
			}
			r := row{workload: w.name, mode: m.name}
			for range *startupRuns {
				run := e.coldStart(b, w, m.snapshotter, shape(refs[m.repo]), proxy, "")
				b.Logf("%s, %s: %v to the first line (%d requests, %.1f MB)", w.name, m.name, run.total.Round(time.Millisecond), run.requests, float64(run.bytes)/1e6)
				r.runs = append(r.runs, run)
			}
			rows = append(rows, r)
		}
		b.Logf("%s: image of %.1f MB (gzip)", w.name, float64(size)/1e6)
	}

	// The table, in the README's form.
	var out strings.Builder
	fmt.Fprintf(&out, "\nlink: %v; %d cold runs each; times are medians (min in brackets)\n\n", link, *startupRuns)
	fmt.Fprintln(&out, "| workload | mode | to first output | vs full pull | resolve | pull | open (indexes) | mount | prefetch (MB) | run | requests | MB | snapshotter CPU (first line / all) | peak RSS |")
	fmt.Fprintln(&out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	full := map[string]time.Duration{}
	for _, r := range rows {
		med := func(f func(startupRun) time.Duration) time.Duration {
			var v []time.Duration
			for _, run := range r.runs {
				v = append(v, f(run))
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		total := med(func(s startupRun) time.Duration { return s.total })
		least := slices.MinFunc(r.runs, func(a, b startupRun) int { return int(a.total - b.total) }).total
		if strings.HasPrefix(r.mode, "full") {
			full[r.workload] = total
		}
		ratio := "-"
		if f := full[r.workload]; f > 0 {
			ratio = fmt.Sprintf("%.2fx", float64(f)/float64(total))
		}
		ms := func(f func(startupRun) time.Duration) string {
			return strconv.FormatInt(med(f).Milliseconds(), 10)
		}
		medInt := func(f func(startupRun) int64) int64 {
			var v []int64
			for _, run := range r.runs {
				v = append(v, f(run))
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		fmt.Fprintf(&out, "| %s | %s | %.2f s (%.2f) | %s | %s | %s | %s | %s | %s (%.1f) | %s | %d | %.1f | %.2f / %.2f s | %d MiB |\n",
			r.workload, r.mode, total.Seconds(), least.Seconds(), ratio,
			ms(func(s startupRun) time.Duration { return s.resolve }),
			ms(func(s startupRun) time.Duration { return s.pull }),
			ms(func(s startupRun) time.Duration { return s.open }),
			ms(func(s startupRun) time.Duration { return s.mount }),
			ms(func(s startupRun) time.Duration { return s.prefetch }),
			float64(medInt(func(s startupRun) int64 { return s.planned }))/1e6,
			ms(func(s startupRun) time.Duration { return s.run }),
			medInt(func(s startupRun) int64 { return int64(s.requests) }),
			float64(medInt(func(s startupRun) int64 { return s.bytes }))/1e6,
			med(func(s startupRun) time.Duration { return s.cpuFirst }).Seconds(),
			med(func(s startupRun) time.Duration { return s.cpuAll }).Seconds(),
			medInt(func(s startupRun) int64 { return s.rss })>>20)
	}
	fmt.Fprintln(os.Stdout, out.String())
}

// selected reports whether name contains one of the comma-separated
// words of list; an empty list selects everything.
func selected(name, list string) bool {
	if list == "" {
		return true
	}
	for word := range strings.SplitSeq(list, ",") {
		if word = strings.TrimSpace(word); word != "" && strings.Contains(name, word) {
			return true
		}
	}
	return false
}

// lazylayerCLI runs the lazylayer command with args.
func lazylayerCLI(t testing.TB, args ...string) {
	t.Helper()
	var out bytes.Buffer
	if code := cli.Run(t.Context(), args, &out, &out); code != 0 {
		t.Fatalf("lazylayer %s: exit %d\n%s", strings.Join(args, " "), code, out.String())
	}
}

// recordTrace runs w lazily from ref once with the snapshotter
// recording, and returns the trace it wrote.
func (e *env) recordTrace(t testing.TB, w workload, ref string, proxy *simregistry.Proxy) string {
	dir := e.box.Path(fmt.Sprintf("record-%s", w.name))
	e.coldStart(t, w, "lazylayer", ref, proxy, dir)
	traces, err := filepath.Glob(filepath.Join(dir, "*.trace"))
	if err != nil || len(traces) != 1 {
		t.Fatalf("the recording run of %s left %q in %s: %v", w.name, traces, dir, err)
	}
	return traces[0]
}

// coldStart starts containerd and the snapshotter on new state, pulls
// ref and runs w's program, timing from the pull to its first line of
// output. With record set, the snapshotter records into that directory.
func (e *env) coldStart(t testing.TB, w workload, snapshotter, ref string, proxy *simregistry.Proxy, record string) startupRun {
	t.Helper()
	e.gen++
	e.snapArgs = nil
	if record != "" {
		e.snapArgs = []string{"--record-dir", record}
	}
	repo, _, _ := strings.Cut(path.Base(ref), ":")
	for _, p := range []struct{ flag, dir, ext string }{
		{"--cpu-profile", *startupCPU, "cpu"},
		{"--heap-profile", *startupHeap, "heap"},
	} {
		if p.dir != "" {
			e.snapArgs = append(e.snapArgs, p.flag, filepath.Join(p.dir, fmt.Sprintf("%s-%d.%s", repo, e.gen, p.ext)))
		}
	}
	e.startSnapshotter(t)
	stopContainerd := e.startContainerd(t)
	defer func() {
		stopContainerd()
		os.RemoveAll(e.containerdDir())
		os.RemoveAll(e.snapRoot)
	}()
	client, err := containerd.New(e.address, containerd.WithDefaultNamespace("bench"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := t.Context()
	cpu0 := procCPU(t, e.snap.Process.Pid)

	var resolved time.Time
	resolver := timedResolver{docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchAllHosts)),
	}), &resolved}
	opts := []containerd.RemoteOpt{containerd.WithPullUnpack, containerd.WithPullSnapshotter(snapshotter), containerd.WithResolver(resolver)}
	if snapshotter != "overlayfs" {
		opts = append(opts, containerd.WithImageHandlerWrapper(snapshotters.AppendInfoHandlerWrapper(ref)))
	}
	out := &firstLine{seen: make(chan struct{})}

	proxy.ResetStats()
	start := time.Now()
	img, err := client.Pull(ctx, ref, opts...)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	pulled := time.Now()
	id := fmt.Sprintf("bench%d", e.gen)
	ctr, err := client.NewContainer(ctx, id, containerd.WithImage(img), containerd.WithSnapshotter(snapshotter),
		containerd.WithNewSnapshot(id, img), containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs(w.args...)))
	if err != nil {
		t.Fatal(err)
	}
	defer ctr.Delete(context.WithoutCancel(ctx), containerd.WithSnapshotCleanup)
	task, err := ctr.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, out, out), cio.WithFIFODir(e.box.Path("fifo"))))
	if err != nil {
		t.Fatal(err)
	}
	defer task.Delete(context.WithoutCancel(ctx))
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var status containerd.ExitStatus
	select {
	case <-out.seen:
	case status = <-exited:
	}
	first := out.at()
	st := proxy.Stats()
	cpuFirst := procCPU(t, e.snap.Process.Pid) - cpu0
	if first.IsZero() {
		t.Fatalf("%s printed no line (exit %d): %q", w.name, status.ExitCode(), out.String())
	}
	status = <-exited
	if status.ExitCode() != 0 || !strings.Contains(out.String(), w.want) {
		t.Fatalf("%s: exit %d, printed %q, want %q in it", w.name, status.ExitCode(), out.String(), w.want)
	}
	run := startupRun{
		total: first.Sub(start), resolve: resolved.Sub(start), pull: pulled.Sub(start), run: first.Sub(pulled),
		requests: st.Requests, bytes: st.Bytes, cpuFirst: cpuFirst,
	}
	if snapshotter != "overlayfs" {
		e.waitFetched(t)
		m := scrape(t, e.metrics)
		run.open = seconds(m["lazylayer_image_open_seconds_sum"])
		run.mount = seconds(m["lazylayer_mount_seconds_sum"])
		run.prefetch = seconds(m["lazylayer_prefetch_seconds_sum"])
		run.planned = int64(m["lazylayer_prefetch_planned_bytes_total"])
		run.cpuAll = procCPU(t, e.snap.Process.Pid) - cpu0
		run.rss = procHWM(t, e.snap.Process.Pid)
	}
	task.Delete(ctx)
	ctr.Delete(ctx, containerd.WithSnapshotCleanup)
	e.stop(t) // writes the trace when recording
	return run
}

// timedResolver notes when the image's name is resolved.
type timedResolver struct {
	remotes.Resolver
	done *time.Time
}

func (r timedResolver) Resolve(ctx context.Context, ref string) (string, ocispec.Descriptor, error) {
	name, desc, err := r.Resolver.Resolve(ctx, ref)
	*r.done = time.Now()
	return name, desc, err
}

// firstLine collects a container's output and notes when its first line
// ended.
type firstLine struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first time.Time
	seen  chan struct{}
}

func (f *firstLine) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.first.IsZero() && bytes.IndexByte(p, '\n') >= 0 {
		f.first = time.Now()
		close(f.seen)
	}
	return f.buf.Write(p)
}

func (f *firstLine) at() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.first
}

func (f *firstLine) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.String()
}

// scrape reads the snapshotter's metrics without labels.
func scrape(t testing.TB, addr string) map[string]float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		name, value, ok := strings.Cut(s.Text(), " ")
		if v, err := strconv.ParseFloat(value, 64); ok && err == nil && !strings.HasPrefix(name, "#") {
			m[name] = v
		}
	}
	return m
}

func seconds(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }

// procCPU returns the user and system CPU time process pid used.
func procCPU(t testing.TB, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command's closing parenthesis; utime and
	// stime are the 14th and 15th of the line, in clock ticks (100 Hz).
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// procHWM returns the peak resident set size of process pid.
func procHWM(t testing.TB, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// buildWorkloadImage builds w's image from the host's files and pushes
// it, gzip, to the registry; it returns its reference and compressed
// size.
func (e *env) buildWorkloadImage(t testing.TB, w workload) (string, int64) {
	base := e.box.Path(w.name + "-base")
	app := e.box.Path(w.name + "-app")
	for _, d := range []string{"etc", "tmp", "root", "lib64"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(base, "tmp"), 0o1777)
	os.WriteFile(filepath.Join(base, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(base, "etc/group"), []byte("root:x:0:\n"), 0o644)
	cp(t, true, base, "/etc/ld.so.cache")
	if libs := sharedLibs(t, w.libs); len(libs) > 0 {
		cp(t, true, base, libs...)
	}
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	cp(t, false, app, w.trees...)
	for name, content := range w.files {
		path := filepath.Join(app, name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var tars [][]byte
	for _, dir := range []string{base, app} {
		var tb bytes.Buffer
		if _, err := dirtar.Write(&tb, dir); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(dir)
		tars = append(tars, tb.Bytes())
	}
	env := append([]string{"PATH=/usr/local/go/bin:/usr/bin:/bin", "LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu"}, w.env...)
	return e.pushImage(t, w.name+"-plain", tars, ocispec.ImageConfig{Entrypoint: w.args[:1], Cmd: w.args[1:], Env: env, WorkingDir: "/"})
}

// cp copies paths under dir, each at its own path; with follow, it
// copies what symbolic links point to instead of the links.
func cp(t testing.TB, follow bool, dir string, paths ...string) {
	deref := ""
	if follow {
		deref = "h"
	}
	var rel []string
	for _, p := range paths {
		rel = append(rel, strings.TrimPrefix(p, "/"))
	}
	script := `tar -C / -c` + deref + `f - -- "$@" | tar -C "$0" -xpf -`
	cmd := exec.Command("sh", append([]string{"-c", script, dir}, rel...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("copy %q to %s: %v\n%s", paths, dir, err, out)
	}
}

// sharedLibs returns the shared libraries the given programs and
// libraries need, as ldd names them, each once.
func sharedLibs(t testing.TB, programs []string) []string {
	seen := map[string]bool{}
	var libs []string
	for _, p := range programs {
		out, err := exec.Command("ldd", p).Output()
		if err != nil {
			continue // not dynamic
		}
		for line := range strings.Lines(string(out)) {
			// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
			// "/lib64/ld-linux-x86-64.so.2 (0x...)"
			f := strings.Fields(line)
			var lib string
			switch {
			case len(f) == 4 && f[1] == "=>":
				lib = f[2]
			case len(f) == 2 && strings.HasPrefix(f[0], "/"):
				lib = f[0]
			}
			if lib != "" && !strings.HasPrefix(lib, jdk) && !seen[lib] {
				seen[lib] = true
				libs = append(libs, lib)
			}
		}
	}
	return libs
}
