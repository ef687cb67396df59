package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lazylayer/lazylayer/internal/simregistry"
)

// stageOrder is the order stage columns appear in; stages a mode names
// that are not here follow in the order first seen.
var stageOrder = []string{"open", "toc", "prefetch", "fetch", "decompress", "untar", "read"}

// report prints the run's setting, the results table, the results of the
// modes run under each multi-range behaviour, and the stage breakdown.
func report(w io.Writer, env *Env, registry, traceName string, results, byRanges []Result) {
	fmt.Fprintf(w, "layer   %s: %d files, %s; gzip blob %s\n",
		env.Dir, env.Tree.Files, formatBytes(env.Tree.Bytes), formatBytes(env.Gzip.Size))
	fmt.Fprintf(w, "trace   %s: %d files, %s (%.1f%% of the layer's file bytes)\n",
		traceName, len(env.Trace), formatBytes(env.TraceBytes), 100*float64(env.TraceBytes)/float64(max(env.Tree.Bytes, 1)))
	fmt.Fprintf(w, "link    %v; registry %s at %s\n", env.Link, registry, strings.TrimPrefix(env.Registry.URL(), "http://"))
	if env.NoAnnotations {
		fmt.Fprintln(w, "open    lazy layers with their TOC digest only, the reader's default tail")
	} else {
		fmt.Fprintln(w, "open    lazy layers with the descriptor's annotations")
	}
	fmt.Fprintf(w, "limit   2 x %v + %s at %s = %v (the trace's files gzipped one by one, an estimate; lazy modes use their blob's chunk table, gzip+zTOC its spans and zTOC)\n\n",
		env.Link.RTT, formatBytes(env.StartupCompressed), bandwidthString(env.Link.Bandwidth),
		formatDuration(env.Link.PhysicalLimit(env.StartupCompressed)))

	table(w, env, results, false)
	for _, r := range results {
		if r.Note != "" {
			fmt.Fprintf(w, "%s: %s\n", r.Mode, r.Note)
		}
	}
	if len(byRanges) > 0 {
		fmt.Fprintln(w, "\nregistry answering a request for several ranges with: multi, multipart (206);")
		fmt.Fprintln(w, "single, the whole blob (200, as S3 and many CDNs); reject, 400 (as Google Cloud Storage)")
		table(w, env, byRanges, true)
	}

	var names []string
	for _, r := range append(slices.Clone(results), byRanges...) {
		for _, s := range r.Stages {
			if !slices.Contains(names, s.Name) {
				names = append(names, s.Name)
			}
		}
	}
	slices.SortStableFunc(names, func(a, b string) int { return stageRank(a) - stageRank(b) })
	fmt.Fprintln(w, "\nstage busy time (the stages of a pipelined mode overlap)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "mode\t%s\t\n", strings.Join(names, "\t"))
	rows := slices.Clone(results)
	for _, r := range byRanges {
		if r.MultiRange != simregistry.MultiRangeServe {
			r.Mode += " (" + r.MultiRange.String() + ")"
			rows = append(rows, r)
		}
	}
	for _, r := range rows {
		cells := make([]string, len(names))
		for i, name := range names {
			cells[i] = "-"
			for _, s := range r.Stages {
				if s.Name == name {
					cells[i] = formatDuration(s.Time)
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t\n", r.Mode, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// table prints results, with the registry's multi-range behaviour if
// ranges, and the time against the limit of eStargz's chunks if a mode
// fetches coarser units.
func table(w io.Writer, env *Env, results []Result, ranges bool) {
	chunks := slices.ContainsFunc(results, func(r Result) bool { return r.ChunkNeededBytes > 0 })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "mode\t"
	if ranges {
		head += "ranges\t"
	}
	head += "time\trequests\twaves\tbytes\tlimit\tx limit\t"
	if chunks {
		head += "x eStargz limit\t"
	}
	fmt.Fprintln(tw, head)
	for _, r := range results {
		needed := r.NeededBytes
		if needed == 0 {
			needed = env.StartupCompressed
		}
		limit := env.Link.PhysicalLimit(needed)
		row := r.Mode + "\t"
		if ranges {
			row += r.MultiRange.String() + "\t"
		}
		row += fmt.Sprintf("%s\t%d\t%d\t%s\t%s\t%.2fx\t", formatDuration(r.Total), r.Requests, r.Waves,
			formatBytes(r.Bytes), formatDuration(limit), float64(r.Total)/float64(limit))
		if chunks {
			if r.ChunkNeededBytes > 0 {
				row += fmt.Sprintf("%.2fx\t", float64(r.Total)/float64(env.Link.PhysicalLimit(r.ChunkNeededBytes)))
			} else {
				row += "-\t"
			}
		}
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
}

// bandwidthString formats a link's bandwidth, zero being unlimited.
func bandwidthString(bytesPerSecond float64) string {
	if bytesPerSecond <= 0 {
		return "unlimited bandwidth"
	}
	return simregistry.FormatBandwidth(bytesPerSecond)
}

// stageRank places known stages in stageOrder and the rest after them.
func stageRank(name string) int {
	if i := slices.Index(stageOrder, name); i >= 0 {
		return i
	}
	return len(stageOrder)
}

// formatDuration rounds d for a table: milliseconds below 10s.
func formatDuration(d time.Duration) string {
	if d >= 10*time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// formatBytes formats n with a decimal prefix, as "80.3 MB".
func formatBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
