package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/lazylayer/lazylayer/convert"
	"github.com/lazylayer/lazylayer/image/layout"
	"github.com/lazylayer/lazylayer/internal/benchimage"
	"github.com/lazylayer/lazylayer/internal/simregistry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The image modes measure whole images, not one layer with a trace: they
// run only when -modes names them (imageSelected), on the image of
// package benchimage (the Go toolchain, a JDK and Python, one layer
// each), built once for all of them.
var imageModes = []string{"convert-estargz", "convert-zstd:chunked", "open", "open-soci"}

// imageSelected reports whether the -modes list names the image mode:
// by its whole name, or "convert" for both conversions.
func imageSelected(name, list string) bool {
	for word := range strings.SplitSeq(list, ",") {
		word = strings.TrimSpace(word)
		if word == name || word == "convert" && strings.HasPrefix(name, "convert-") {
			return true
		}
	}
	return false
}

// imageBench is the state the image modes share.
type imageBench struct {
	dir   string // scratch, removed at the end
	src   string // the source image, an OCI layout tagged "src"
	img   *benchimage.Image
	runs  int
	link  simregistry.Link
	logf  func(string, ...any)
	tools string // where built binaries go
	// closers stop what sides started (a containerd), at the end.
	closers []func() error
}

// A side is one tool converting the image, run as a child process so
// that its CPU time and peak RSS are its own.
type side struct {
	name string
	// note says what the side's settings are, for the table.
	note string
	// run converts the source once, into a fresh destination made from
	// out, and returns the output's layer bytes.
	run func(ctx context.Context, out string) (usage, error)
	// skip, if set, says which package would make the side runnable.
	skip string
}

// usage is what one run of a side cost.
type usage struct {
	wall, cpu time.Duration
	peakRSS   int64 // bytes
	out       int64 // the output image's layer bytes
}

// runImageModes runs the image modes sel names and prints their tables.
func runImageModes(ctx context.Context, w io.Writer, scratch string, runs int, link simregistry.Link, sel []string, logf func(string, ...any)) error {
	dir, err := os.MkdirTemp(scratch, "lazylayer-bench-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &imageBench{dir: dir, src: filepath.Join(dir, "src"), runs: runs, link: link, logf: logf, tools: filepath.Join(dir, "bin")}
	defer func() {
		for _, c := range slices.Backward(b.closers) {
			c()
		}
	}()
	start := time.Now()
	if b.img, err = benchimage.Build(ctx, b.src, "src"); err != nil {
		return err
	}
	logf("setup: image of %q built in %v", b.img.Layers, time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(w, "image   %d layers: %s; %d files, %s of tar, %s of gzip (default level)\n", len(b.img.Layers),
		layerNames(b.img.Layers), b.img.Files, formatBytes(b.img.TarBytes), formatBytes(b.img.GzipBytes))
	fmt.Fprintf(w, "runs    %d of each side, interleaved; wall and CPU (user+system, children and daemons included) as min / median\n\n", runs)

	for _, m := range sel {
		switch m {
		case "convert-estargz", "convert-zstd:chunked":
			format := strings.TrimPrefix(m, "convert-")
			sides, err := b.sides(ctx, format)
			if err != nil {
				return err
			}
			if err := b.convert(ctx, w, format, sides); err != nil {
				return fmt.Errorf("%s: %w", m, err)
			}
		case "open":
			if err := b.open(ctx, w, "eStargz", "estargz"); err != nil {
				return fmt.Errorf("open: %w", err)
			}
		case "open-soci":
			if err := b.open(ctx, w, "SOCI", "soci", convert.WithSOCI()); err != nil {
				return fmt.Errorf("open-soci: %w", err)
			}
		}
	}
	return nil
}

// layerNames names each layer by its first root.
func layerNames(layers [][]string) string {
	var names []string
	for _, roots := range layers {
		names = append(names, strings.Join(roots, " + "))
	}
	return strings.Join(names, ", ")
}

// convert runs every side runs times, interleaved, and prints their
// table.
func (b *imageBench) convert(ctx context.Context, w io.Writer, format string, sides []side) error {
	results := make([][]usage, len(sides))
	for run := range b.runs {
		for i, s := range sides {
			if s.skip != "" {
				continue
			}
			out := filepath.Join(b.dir, fmt.Sprintf("out-%d-%d", i, run))
			b.logf("convert %s: %s, run %d of %d", format, s.name, run+1, b.runs)
			u, err := s.run(ctx, out)
			os.RemoveAll(out)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			b.logf("  %v wall, %v CPU, %s peak RSS, %s out", u.wall.Round(time.Millisecond), u.cpu.Round(time.Millisecond), formatBytes(u.peakRSS), formatBytes(u.out))
			results[i] = append(results[i], u)
		}
	}

	fmt.Fprintf(w, "convert to %s, %s of tar\n", format, formatBytes(b.img.TarBytes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\twall min\twall median\tCPU-s min\tCPU-s median\tpeak RSS\toutput bytes\tMB/s (median)\tx faster (median)\t")
	var slowest time.Duration
	for _, us := range results {
		if len(us) > 0 {
			slowest = max(slowest, median(us, func(u usage) time.Duration { return u.wall }))
		}
	}
	for i, s := range sides {
		us := results[i]
		if len(us) == 0 {
			fmt.Fprintf(tw, "%s\tskipped: apt-get install %s\t\t\t\t\t\t\t\t\n", s.name, s.skip)
			continue
		}
		wall := func(u usage) time.Duration { return u.wall }
		cpu := func(u usage) time.Duration { return u.cpu }
		var rss int64
		for _, u := range us {
			rss = max(rss, u.peakRSS)
		}
		med := median(us, wall)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.1f\t%s\t%d\t%.1f\t%.2fx\t\n", s.name,
			formatDuration(minOf(us, wall)), formatDuration(med), minOf(us, cpu).Seconds(), median(us, cpu).Seconds(),
			formatBytes(rss), us[len(us)-1].out, float64(b.img.TarBytes)/1e6/med.Seconds(), float64(slowest)/float64(med))
	}
	tw.Flush()
	for _, s := range sides {
		if s.note != "" {
			fmt.Fprintf(w, "  %s: %s\n", s.name, s.note)
		}
	}
	fmt.Fprintln(w)
	return nil
}

// minOf and median return the least and the median of f over us.
func minOf(us []usage, f func(usage) time.Duration) time.Duration {
	m := f(us[0])
	for _, u := range us[1:] {
		m = min(m, f(u))
	}
	return m
}

func median(us []usage, f func(usage) time.Duration) time.Duration {
	var ds []time.Duration
	for _, u := range us {
		ds = append(ds, f(u))
	}
	slices.Sort(ds)
	if len(ds)%2 == 1 {
		return ds[len(ds)/2]
	}
	return (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
}

// sides returns the tools that convert to format: lazylayer, and the
// reference tool of the format.
func (b *imageBench) sides(ctx context.Context, format string) ([]side, error) {
	ll, err := b.lazylayer(ctx)
	if err != nil {
		return nil, err
	}
	src := "oci:" + b.src + ":src"
	lazy := func(args ...string) func(ctx context.Context, out string) (usage, error) {
		return func(ctx context.Context, out string) (usage, error) {
			argv := append([]string{"convert", "--format", format, "--prefetch", "none", "--temp-dir", b.dir}, args...)
			u, err := runMeasured(ctx, exec.CommandContext(ctx, ll, append(argv, src, "oci:"+out+":out")...))
			if err != nil {
				return u, err
			}
			u.out, err = layoutLayerBytes(out, "out")
			return u, err
		}
	}
	switch format {
	case "estargz":
		return []side{
			b.ctrRemote(),
			{name: "lazylayer convert --level 9", note: "gzip level 9 as ctr-remote's default, 4 MiB chunks, no prioritised files", run: lazy("--level", "9")},
			{name: "lazylayer convert", note: "lazylayer's defaults: gzip level 7, 4 MiB chunks (no prioritised files, --prefetch none)", run: lazy()},
		}, nil
	case "zstd:chunked":
		return []side{
			b.skopeo(),
			{name: "lazylayer convert", note: "zstd level 3 (the default, as skopeo's), no prioritised files", run: lazy()},
		}, nil
	}
	return nil, fmt.Errorf("unknown format %q", format)
}

// lazylayer builds the lazylayer command once.
func (b *imageBench) lazylayer(ctx context.Context) (string, error) {
	bin := filepath.Join(b.tools, "lazylayer")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/lazylayer/lazylayer/cmd/lazylayer")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build lazylayer: %w\n%s", err, out)
	}
	return bin, nil
}

// skopeo is skopeo copy to zstd:chunked, layout to layout.
func (b *imageBench) skopeo() side {
	s := side{name: "skopeo copy --dest-compress-format zstd:chunked", note: "containers/image's default zstd level (3)"}
	bin, err := exec.LookPath("skopeo")
	if err != nil {
		s.skip = "skopeo"
		return s
	}
	s.run = func(ctx context.Context, out string) (usage, error) {
		u, err := runMeasured(ctx, exec.CommandContext(ctx, bin, "copy", "--dest-compress-format", "zstd:chunked",
			"oci:"+b.src+":src", "oci:"+out+":out"))
		if err != nil {
			return u, err
		}
		u.out, err = layoutLayerBytes(out, "out")
		return u, err
	}
	return s
}

// runMeasured runs cmd and returns its wall time, CPU time and peak RSS.
// A failure quotes the end of its output.
func runMeasured(ctx context.Context, cmd *exec.Cmd) (usage, error) {
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	u := usage{wall: time.Since(start)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && cmd.ProcessState != nil {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		u.peakRSS = ru.Maxrss << 10 // kB on Linux
	}
	if err != nil {
		return u, fmt.Errorf("%s: %w\n%s", filepath.Base(cmd.Path), err, out.String())
	}
	return u, ctx.Err()
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - 4096; over > 0 {
		t.b = t.b[over:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

// layoutLayerBytes sums the layer sizes of the image tagged ref in the
// OCI layout dir.
func layoutLayerBytes(dir, ref string) (int64, error) {
	l, err := layout.Open(dir, ref)
	if err != nil {
		return 0, err
	}
	ctx := context.Background()
	d, err := l.Resolve(ctx)
	if err != nil {
		return 0, err
	}
	data, err := l.Manifest(ctx, d)
	if err != nil {
		return 0, err
	}
	return manifestLayerBytes(data)
}

// manifestLayerBytes sums the layer sizes of an image manifest.
func manifestLayerBytes(data []byte) (int64, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return 0, err
	}
	if len(m.Layers) == 0 {
		return 0, errors.New("the output is no image manifest with layers")
	}
	var n int64
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// procCPU returns the CPU time process pid has used, from /proc.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th of them, in clock ticks (USER_HZ, 100
	// on Linux).
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}
