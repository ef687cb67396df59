package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lazylayer/lazylayer/convert"
	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/toc"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
)

// convertFlags are the flags of convert and optimize.
type convertFlags struct {
	format      string
	level       int
	chunkSize   string
	prefetch    string
	parallelism int
	memory      string
	tempDir     string

	soci         bool
	spanSize     string
	minLayerSize string
}

func (f *convertFlags) register(cmd *cobra.Command, prefetchFlag bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.format, "format", "estargz", `the seekable format to write: "estargz" or "zstd:chunked"`)
	fl.IntVar(&f.level, "level", 0, "the compression level (gzip 1-9, zstd 1-22; default the writer's)")
	fl.StringVar(&f.chunkSize, "chunk-size", "", `the largest chunk a file is cut into, as bytes or with a unit ("4MiB"; default the writer's)`)
	if prefetchFlag {
		fl.BoolVar(&f.soci, "soci", false, "index the layers for SOCI instead of rewriting them: zTOCs, a SOCI index v2 and prefetch artifacts")
		fl.StringVar(&f.spanSize, "soci-span-size", "4MiB", "with --soci: the uncompressed bytes between two checkpoints of a zTOC")
		fl.StringVar(&f.minLayerSize, "soci-min-layer-size", "10MiB", "with --soci: the smallest layer indexed (0: every layer)")
		fl.StringVar(&f.prefetch, "prefetch", "config", `which files to put first: "config" (a plan from the image config), "none", "trace:FILE" (a path list or a recording), "strace:FILE" (strace output) or "patterns:FILE"`)
	}
	fl.IntVar(&f.parallelism, "parallel", convert.DefaultParallelism, "layers converted at once")
	fl.StringVar(&f.memory, "memory", "512MiB", "the memory the conversion's buffers may use in all")
	fl.StringVar(&f.tempDir, "temp-dir", "", "where converted layers wait until they are pushed (default $TMPDIR)")
}

// options turns the flags into convert options; platform is the global
// --platform.
func (f *convertFlags) options(platform string) ([]convert.Option, error) {
	var opts []convert.Option
	if f.soci {
		o, err := f.sociOption()
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	switch f.format {
	case "estargz":
		opts = append(opts, convert.WithFormat(toc.FormatEStargz))
	case "zstd:chunked", "zstdchunked":
		opts = append(opts, convert.WithFormat(toc.FormatZstdChunked))
	default:
		return nil, usageErrorf("--format %q: want estargz or zstd:chunked", f.format)
	}
	if f.level != 0 {
		opts = append(opts, convert.WithCompressionLevel(f.level))
	}
	if f.chunkSize != "" {
		n, err := parseSize(f.chunkSize)
		if err != nil {
			return nil, usageErrorf("--chunk-size: %v", err)
		}
		opts = append(opts, convert.WithChunkSize(n))
	}
	memory, err := parseSize(f.memory)
	if err != nil {
		return nil, usageErrorf("--memory: %v", err)
	}
	opts = append(opts, convert.WithMemoryBudget(memory), convert.WithParallelism(f.parallelism), convert.WithTempDir(f.tempDir))
	if platform != "" {
		p, err := parsePlatform(platform)
		if err != nil {
			return nil, err
		}
		opts = append(opts, convert.WithPlatforms(p))
	}
	plan, err := prefetchOption(f.prefetch)
	if err != nil {
		return nil, err
	}
	return append(opts, plan), nil
}

// sociOption reads the --soci flags.
func (f *convertFlags) sociOption() (convert.Option, error) {
	if f.format != "estargz" || f.level != 0 || f.chunkSize != "" {
		return nil, usageErrorf("--soci indexes the layers as they are: --format, --level and --chunk-size do not apply")
	}
	span, err := parseSize(f.spanSize)
	if err != nil || span == 0 {
		return nil, usageErrorf("--soci-span-size %q: want a size above 0", f.spanSize)
	}
	minSize, err := parseSize(f.minLayerSize)
	if err != nil {
		return nil, usageErrorf("--soci-min-layer-size: %v", err)
	}
	return convert.WithSOCI(convert.SOCISpanSize(span), convert.SOCIMinLayerSize(minSize)), nil
}

// prefetchOption reads the --prefetch flag's source.
func prefetchOption(spec string) (convert.Option, error) {
	kind, file, _ := strings.Cut(spec, ":")
	switch kind {
	case "", "config":
		return convert.WithPrefetchFromConfig(), nil
	case "none":
		return convert.WithoutPrefetch(), nil
	case "trace", "strace", "patterns":
		if file == "" {
			return nil, usageErrorf("--prefetch %s: needs a file, as %s:FILE", kind, kind)
		}
	default:
		return nil, usageErrorf("--prefetch %q: want config, none, trace:FILE, strace:FILE or patterns:FILE", spec)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "patterns":
		ps, err := prefetch.ParsePatterns(string(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return convert.WithPrefetchPatterns(ps), nil
	case "strace":
		accesses, err := prefetch.ParseStrace(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return convert.WithPrefetchTrace(accesses), nil
	}
	accesses, err := prefetch.ParseTrace(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return convert.WithPrefetchTrace(accesses), nil
}

func (c *cli) convertCommand() *cobra.Command {
	var f convertFlags
	cmd := &cobra.Command{
		Use:   "convert SRC DST",
		Short: "Convert an image to eStargz or zstd:chunked, or index it for SOCI",
		Long: `convert reads the image SRC and writes it to DST with every layer rewritten in
a seekable format: eStargz (the default) or zstd:chunked. Every platform of a
multi-platform image is converted, unless --platform names one.

The files a container reads at start are put first in each layer, where lazy
pullers fetch them in one request, and listed in the manifest's
io.github.lazylayer.prefetch.patterns annotation. By default they come from a
plan made from the image config (see "lazylayer plan"); --prefetch takes them
from a recorded trace, strace output or a patterns file instead.

The output runs on every runtime: media types are the standard ones, and each
layer decompresses to the tar its DiffID names. Layers that are already
converted with the same options are copied, not converted again. Nothing is
tagged until every blob and manifest is written.

With --soci the layers are not rewritten but indexed, as soci-snapshotter's
"soci convert" does: each gzip or uncompressed layer of at least
--soci-min-layer-size is read once and gets a zTOC, each manifest a SOCI index
v2 (with the prefetch plan as SOCI prefetch artifacts), and DST is an image
index of the manifests, annotated with their SOCI index, and the SOCI
indexes. The layers and configs keep their digests. zstd layers are not
indexed: SOCI does not read them.

Examples:
  lazylayer convert docker://docker.io/library/python:3.12 localhost:5000/python:3.12-esgz
  lazylayer convert --format zstd:chunked oci:./layout:v1 localhost:5000/app:v1-zstd
  lazylayer convert docker-archive:app.tar oci:./converted:v1
  lazylayer convert --soci localhost:5000/app:v1 localhost:5000/app:v1-soci`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			opts, err := f.options(c.platform)
			if err != nil {
				return err
			}
			return c.convert(cmd, a[0], a[1], opts)
		},
	}
	f.register(cmd, true)
	return cmd
}

func (c *cli) optimizeCommand() *cobra.Command {
	var f convertFlags
	var trace string
	cmd := &cobra.Command{
		Use:   "optimize SRC DST --trace FILE",
		Short: "Convert an image with the files a recorded run read first",
		Long: `optimize converts the image SRC to DST like convert, with the files a real
run of the container read put first, in the order it read them. FILE is a
recording (the JSON lines prefetch.Recorder and a snapshotter's access log
write), a plain list of paths, or strace output (strace -f -e trace=file).`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if trace == "" {
				return usageErrorf("optimize needs --trace FILE")
			}
			kind := "trace"
			if isStrace(trace) {
				kind = "strace"
			}
			f.prefetch = kind + ":" + trace
			opts, err := f.options(c.platform)
			if err != nil {
				return err
			}
			return c.convert(cmd, a[0], a[1], opts)
		},
	}
	f.register(cmd, false)
	cmd.Flags().StringVar(&trace, "trace", "", "the recorded run: a recording, a path list, or strace output")
	return cmd
}

// isStrace reports whether the file at path looks like strace output: its
// first line that is not blank holds a system call, "name(args) = result".
func isStrace(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		return !strings.HasPrefix(line, "{") && strings.Contains(line, "(") && strings.Contains(line, ") = ")
	}
	return false
}

type convertResult struct {
	Source      string             `json:"source"`
	Destination string             `json:"destination"`
	Descriptor  ocispec.Descriptor `json:"descriptor"`
	Layers      []layerProgress    `json:"layers"`
	Seconds     float64            `json:"seconds"`
}

type layerProgress struct {
	Manifest string `json:"manifest"`
	Index    int    `json:"index"`
	Digest   string `json:"digest"`
	Read     int64  `json:"bytesIn"`
	Written  int64  `json:"bytesOut"`
	Reused   bool   `json:"reused,omitempty"`
	Note     string `json:"note,omitempty"`
}

func (c *cli) convert(cmd *cobra.Command, from, to string, opts []convert.Option) error {
	ctx := cmd.Context()
	s, err := c.newSession()
	if err != nil {
		return err
	}
	defer s.Close()
	src, err := s.source(from)
	if err != nil {
		return err
	}
	if cl, ok := src.(io.Closer); ok {
		defer cl.Close()
	}
	dst, err := image.ParseTarget(to, s.registry)
	if err != nil {
		return err
	}
	prog := c.newProgress()
	start := time.Now()
	desc, err := convert.Image(ctx, src, dst, append(opts, convert.WithProgress(prog.report))...)
	layers := prog.finish()
	if err != nil {
		return err
	}
	res := convertResult{Source: from, Destination: to, Descriptor: desc, Layers: layers, Seconds: time.Since(start).Seconds()}
	return c.emit(res, func(w io.Writer) error {
		var in, out int64
		for _, l := range layers {
			in += l.Read
			out += l.Written
		}
		_, err := fmt.Fprintf(w, "%s -> %s: %s (%s), %s, %s in, %s out, in %.1fs\n",
			from, to, desc.Digest, desc.MediaType, plural(len(layers), "layer"), humanBytes(in), humanBytes(out), res.Seconds)
		return err
	})
}

// parseSize reads a byte count, bare or with a unit: "4194304", "4MiB",
// "512M" (binary units: K, Ki, KiB, KB all mean 1024).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number of bytes, optionally with a unit (KiB, MiB, GiB)", s)
	}
	shift := map[string]uint{"": 0, "B": 0, "K": 10, "KB": 10, "KIB": 10, "M": 20, "MB": 20, "MIB": 20, "G": 30, "GB": 30, "GIB": 30}
	sh, ok := shift[unit]
	if !ok || n > (1<<62)>>sh {
		return 0, fmt.Errorf("size %q: want a number of bytes, optionally with a unit (KiB, MiB, GiB)", s)
	}
	return n << sh, nil
}

// parsePlatform reads os/arch[/variant].
func parsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return ocispec.Platform{}, usageErrorf("--platform %q: want os/arch[/variant]", s)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// plural returns "1 layer" or "n layers".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
