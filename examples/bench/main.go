// Command bench measures how long a container start waits for its layer,
// pulled in full and lazily, against the physical limit of the network.
//
// It takes any directory as a layer and a trace of the files a workload
// reads at startup, puts the layer in a registry behind a simulated link
// (an RTT per request and one shared bandwidth cap), and runs each mode:
// from nothing to every trace file read and verified. The modes are
//
//   - full pull: download the gzip layer, gunzip and untar it, read;
//   - lazy, no prefetch: open the layer as eStargz, built without any
//     prioritised files, and read each file on demand;
//   - lazy + trace prefetch: the same blob, with a plan from the trace
//     prefetched while the workload reads;
//   - lazy zstd:chunked + trace prefetch: the same, with the layer built
//     as zstd:chunked (opened from its annotations: TOC and tar-split in
//     one request, checked against each other);
//   - lazy gzip+zTOC, no prefetch and + trace prefetch: the plain gzip
//     layer a full pull downloads, unmodified, opened with its zTOC (made
//     by toc/soci's indexer with spans of each of -span-sizes, pushed as a
//     blob of its own, as a SOCI index lists it, and fetched in one
//     request on the clock), its files read on demand or prefetched from
//     the trace in one plan;
//   - lazy + image-config prefetch: a plan from an OCI image config whose
//     Entrypoint is the trace's first file (a program of the tree), the
//     rest read on demand; the report says how much of the trace it covers;
//   - lazy + recorded profile: a first lazy run records which files the
//     workload reads (prefetch.Recorder), the layer is rebuilt with them
//     first behind a landmark, and a second, measured cold start fetches
//     the landmark's region together with the index (prefetch.Preload,
//     given the region's end as a hint published with the layer).
//
// For each it reports the time, requests, waves (requests sent while no
// other was in flight: the round trips on the critical path), bytes, the
// ratio to the physical limit (2 RTTs plus the compressed bytes of the
// chunks holding the trace's files, from the blob's own chunk table, over
// the bandwidth; for a gzip layer those of the spans holding them, and
// the zTOC), and the busy time of each stage. The gzip modes are also
// compared with the eStargz blob's limit, which shows what fetching
// whole spans costs. Every lazy open is given
// the layer descriptor's annotations, as a client that has the image
// manifest: they pin the TOC digest and locate index and footer, which
// arrive in one request. With -annotations=false it is given only the TOC
// digest: the reader's defaults then fetch the blob's last MiB and, if the
// index starts before it, the rest of the index in a second request.
//
// Usage:
//
//	go run ./examples/bench [-dir DIR] [-trace FILE] [-rtt 20ms] [-bw 50MB/s] [-registry sim|docker] [-modes LIST]
//	                       [-ranges multi,single,reject] [-workers N] [-requests N] [-annotations=false] [-log] [-scratch DIR] [-runs N]
//	                       [-span-sizes 4MiB,1MiB]
//
// -registry sim (the default) serves blobs from memory; -registry docker
// starts /usr/bin/docker-registry on a loopback port and shapes its
// traffic with the same link model. The modes that ask for many ranges at
// once (the trace prefetches) run again with the registry answering a
// request for several ranges as each of -ranges says: multi serves them
// (multipart/byteranges), single answers with the whole blob (as S3 and
// many CDNs do), reject answers 400 (as Google Cloud Storage does); a
// second table compares them. Scratch files (the layer's tar, the
// full pull's extracted tree) go to -scratch, by default /dev/shm where it
// exists, so that disk speed does not drown the network. The default layer is the Go toolchain
// in use ($(go env GOROOT)) and the default trace its files that `go build`
// of a hello-world program reads with an empty build cache (committed in
// testdata/go-build.trace).
//
// The image modes run only when -modes names them, on a 3-layer image of
// this machine's Go toolchain, a JDK and Python (internal/benchimage):
// "convert" (or convert-estargz, convert-zstd:chunked) converts it with
// the lazylayer command against ctr-remote image convert --estargz --oci
// (in a containerd of its own) and skopeo copy --dest-compress-format
// zstd:chunked, -runs times each, interleaved, and reports wall time,
// CPU time, peak RSS and output size; "open" opens the image converted
// to eStargz ("open-soci": indexed by convert --soci, its layers left as
// they are) in docker-registry, with and without a bearer-token gate,
// over the link, and counts round trips on the critical path and token
// requests.
// A missing tool skips its side and names its Debian package:
//
//	go run ./examples/bench -modes convert,open -runs 3
//
// To turn an strace log into a trace:
//
//	strace -f -e trace=openat,execve -o LOG COMMAND
//	go run ./examples/bench -dir ROOT -strace LOG > FILE
//
// Timings depend on the machine's load; the link simulation itself keeps
// within a few percent of its model (see simregistry's benchmarks).
package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lazylayer/lazylayer/internal/simregistry"
	"github.com/lazylayer/lazylayer/reader"
)

// defaultTrace is testdata/go-build.trace, built in so the default run
// works from any directory.
//
//go:embed testdata/go-build.trace
var defaultTrace []byte

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	fl.SetOutput(stderr)
	dir := fl.String("dir", "", "the layer's directory (default: $(go env GOROOT))")
	traceFile := fl.String("trace", "", "file of paths relative to -dir, one a line, in read order (default: the built-in go build trace)")
	rtt := fl.Duration("rtt", 20*time.Millisecond, "round-trip time of every request")
	bw := fl.String("bw", "50MB/s", `bandwidth shared by all responses ("50MB/s", "400Mbit/s", "unlimited")`)
	registry := fl.String("registry", "sim", "sim (in-process) or docker (/usr/bin/docker-registry on loopback)")
	scratch := fl.String("scratch", defaultScratch(), "directory for the layer's tar and extracted files")
	only := fl.String("modes", "", `run only the modes whose names contain one of these comma-separated words ("full,trace")`)
	rangesList := fl.String("ranges", "multi,single,reject", "how the registry answers a request for several ranges: multi (multipart), single (the whole blob, as S3), reject (400, as GCS); modes that ask for many ranges at once run under each")
	workers := fl.Int("workers", runtime.GOMAXPROCS(0), "frames a prefetch decompresses and verifies at once")
	requests := fl.Int("requests", reader.DefaultPrefetchRequests, "requests a prefetch keeps in flight")
	annotations := fl.Bool("annotations", true, "open lazy layers with the descriptor's annotations (false: only the TOC digest, and the reader's default tail)")
	logRequests := fl.Bool("log", false, "print each lazy run's requests to stderr")
	straceLog := fl.String("strace", "", "convert this strace log (optionally .gz) into a trace of -dir on stdout, then exit")
	runs := fl.Int("runs", 3, "runs of each side of the image modes, interleaved")
	spanList := fl.String("span-sizes", "4MiB", `span sizes of the gzip layer's zTOCs, comma-separated ("1MiB,4MiB"); each runs the gzip+zTOC modes`)
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	bandwidth, err := simregistry.ParseBandwidth(*bw)
	if err != nil {
		return err
	}
	var behaviours []simregistry.MultiRange
	for word := range strings.SplitSeq(*rangesList, ",") {
		m, err := simregistry.ParseMultiRange(strings.TrimSpace(word))
		if err != nil {
			return fmt.Errorf("-ranges: %w", err)
		}
		if !slices.Contains(behaviours, m) {
			behaviours = append(behaviours, m)
		}
	}
	spanSizes, err := parseSpanSizes(*spanList)
	if err != nil {
		return fmt.Errorf("-span-sizes: %w", err)
	}
	if *dir == "" {
		if *dir, err = goroot(); err != nil {
			return err
		}
	}
	if *straceLog != "" {
		return convertStrace(stdout, *straceLog, *dir)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	link := simregistry.Link{RTT: *rtt, Bandwidth: bandwidth}

	// The image modes run only when named; the layer modes when
	// -modes names none or one of them.
	images, layerModes := splitModes(*only)
	if len(images) > 0 {
		if err := runImageModes(ctx, stdout, *scratch, max(*runs, 1), link, images, logf); err != nil {
			return err
		}
		if layerModes == "" {
			return nil
		}
	}
	*only = layerModes

	traceName := *traceFile
	var traceData io.Reader = bytes.NewReader(defaultTrace)
	if traceName == "" {
		traceName = "go-build.trace (built in)"
	} else {
		f, err := os.Open(traceName)
		if err != nil {
			return err
		}
		defer f.Close()
		traceData = f
	}
	trace, skipped, err := loadTrace(traceData, traceName, *dir)
	if err != nil {
		return err
	}
	if len(skipped) > 0 {
		logf("trace: %d of its files are not regular files under %s and are left out (first: %s)", len(skipped), *dir, skipped[0])
	}

	reg, err := newRegistry(ctx, *registry, link)
	if err != nil {
		return err
	}
	defer reg.Close()
	env, err := setupEnv(ctx, *dir, *scratch, trace, link, reg, logf)
	if err != nil {
		return err
	}
	defer env.Close()
	env.PrefetchWorkers, env.PrefetchRequests = *workers, *requests
	env.NoAnnotations = !*annotations
	if *logRequests {
		env.RequestLog = stderr
	}

	// Every selected mode runs against the registry as it is (multi);
	// those asking for many ranges at once run again under each other
	// behaviour of -ranges.
	var results, byRanges []Result
	for _, m := range allModes(spanSizes) {
		if !selected(m.Name, *only) {
			continue
		}
		runs := []simregistry.MultiRange{simregistry.MultiRangeServe}
		for _, b := range behaviours {
			if m.MultiRange && b != simregistry.MultiRangeServe {
				runs = append(runs, b)
			}
		}
		for _, b := range runs {
			logf("running %s (-ranges %s)", m.Name, b)
			reg.SetMultiRange(b)
			res, err := m.Run(ctx, env)
			reg.SetMultiRange(simregistry.MultiRangeServe)
			if err != nil {
				return fmt.Errorf("%s (-ranges %s): %w", m.Name, b, err)
			}
			res.Mode, res.MultiRange = m.Name, b
			if b == simregistry.MultiRangeServe {
				results = append(results, res)
			}
			if m.MultiRange && slices.Contains(behaviours, b) {
				byRanges = append(byRanges, res)
			}
		}
	}
	report(stdout, env, *registry, traceName, results, byRanges)
	return nil
}

// splitModes splits the -modes list into the image modes it names and
// the list of its other words, for the layer modes.
func splitModes(list string) (images []string, layerList string) {
	var rest []string
	for word := range strings.SplitSeq(list, ",") {
		word = strings.TrimSpace(word)
		n := len(images)
		for _, m := range imageModes {
			if imageSelected(m, word) && !slices.Contains(images, m) {
				images = append(images, m)
			}
		}
		if len(images) == n && word != "" {
			rest = append(rest, word)
		}
	}
	return images, strings.Join(rest, ",")
}

// parseSpanSizes parses a comma-separated list of sizes in MiB or KiB
// ("1MiB,512KiB").
func parseSpanSizes(list string) ([]int64, error) {
	var sizes []int64
	for word := range strings.SplitSeq(list, ",") {
		word = strings.TrimSpace(word)
		num, unit := word, int64(1)
		if n, ok := strings.CutSuffix(word, "MiB"); ok {
			num, unit = n, 1<<20
		} else if n, ok := strings.CutSuffix(word, "KiB"); ok {
			num, unit = n, 1<<10
		}
		n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 32)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a size such as 4MiB or 512KiB", word)
		}
		if !slices.Contains(sizes, n*unit) {
			sizes = append(sizes, n*unit)
		}
	}
	return sizes, nil
}

// formatSpanSize formats a span size as parseSpanSizes reads it.
func formatSpanSize(n int64) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// selected reports whether the mode name matches the -modes list.
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

// defaultScratch is /dev/shm where there is one: extracting to memory
// keeps a slow or busy disk from drowning the network in the comparison.
// A real node's disk adds its own time to a full pull.
func defaultScratch() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// goroot asks the go command for its GOROOT.
func goroot() (string, error) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("go env GOROOT: %w (pass -dir)", err)
	}
	return strings.TrimSpace(string(out)), nil
}
