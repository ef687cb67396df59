package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/toc"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
)

type inspectLayer struct {
	Index            int    `json:"index"`
	Digest           string `json:"digest"`
	MediaType        string `json:"mediaType"`
	Format           string `json:"format"`
	Size             int64  `json:"size"`
	IndexSize        int64  `json:"indexSize,omitempty"`
	Files            int    `json:"files,omitempty"`
	ContentSize      int64  `json:"contentSize,omitempty"`
	PrioritizedBytes int64  `json:"prioritizedBytes,omitempty"`
	Patterns         int    `json:"patterns,omitempty"`
	Error            string `json:"error,omitempty"`
}

type inspectResult struct {
	Reference string         `json:"reference"`
	Manifest  string         `json:"manifest"`
	MediaType string         `json:"mediaType"`
	Platform  string         `json:"platform,omitempty"`
	Config    string         `json:"config"`
	Layers    []inspectLayer `json:"layers"`
	// Patterns is the number of prefetch patterns the manifest carries,
	// and PatternFiles the files of the image they match.
	Patterns     int  `json:"patterns"`
	PatternFiles int  `json:"patternFiles"`
	Cost         cost `json:"cost"`
}

func (c *cli) inspectCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect REF",
		Short: "Describe an image's layers, formats and prefetch hints",
		Long: `inspect opens the image REF lazily and describes each layer: media type,
seekable format (or "none"), blob size, index size, files, content bytes, the
bytes its producer prioritised (eStargz landmark), and the prefetch patterns it
carries; and for the image, the patterns its manifest carries and how many of
the image's files they match. It reads the manifest, the config and the
layers' indexes only.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			return c.openImage(ctx, a[0], false, func(s *session, img *image.Image) error {
				res := describeImage(ctx, a[0], img)
				res.Cost = s.cost()
				return c.emit(res, func(w io.Writer) error { return printInspect(w, res) })
			})
		},
	}
}

func describeImage(ctx context.Context, ref string, img *image.Image) inspectResult {
	md := img.ManifestDescriptor()
	res := inspectResult{
		Reference: ref,
		Manifest:  md.Digest.String(),
		MediaType: md.MediaType,
		Config:    img.ConfigDescriptor().Digest.String(),
	}
	if p := img.Config().Platform; p.OS != "" {
		res.Platform = platformString(&p)
	}
	for i, l := range img.Layers() {
		res.Layers = append(res.Layers, describeLayer(i, l))
	}
	if ps, err := prefetch.ParsePatterns(img.Manifest().Annotations[prefetch.AnnotationPatterns]); err == nil && ps.Len() > 0 {
		res.Patterns = ps.Len()
		if root, err := img.FS(); err == nil {
			if plan, err := prefetch.FromPatterns(ctx, root, ps); err == nil {
				res.PatternFiles = plan.Len()
			}
		}
	}
	return res
}

func describeLayer(i int, l image.Layer) inspectLayer {
	d := l.Descriptor
	out := inspectLayer{Index: i, Digest: d.Digest.String(), MediaType: d.MediaType, Size: d.Size, Format: formatName(l)}
	if l.Err != nil {
		out.Error = l.Err.Error()
		return out
	}
	if ps, err := prefetch.ParsePatterns(d.Annotations[prefetch.AnnotationPatterns]); err == nil {
		out.Patterns = ps.Len()
	}
	out.IndexSize = indexSize(d)
	t := l.Layer.TOC()
	for _, e := range t.Entries {
		if e.Type == toc.TypeReg {
			out.Files++
			out.ContentSize += e.Size
		}
	}
	out.PrioritizedBytes = t.PrefetchEnd
	return out
}

// formatName names l's seekable format, "none" if it has none.
func formatName(l image.Layer) string {
	name := "none"
	if l.Format != toc.FormatUnknown {
		name = l.Format.String()
	}
	if l.Whole {
		name += " (fetched whole)"
	}
	return name
}

// indexSize is how many bytes of the blob the layer's index takes, as its
// annotations say, or 0 when they do not.
func indexSize(d ocispec.Descriptor) int64 {
	if _, length, err := toc.ParseIndexPositionAnnotations(d.Annotations); err == nil {
		return length
	}
	if _, f, err := zstdchunked.ParseAnnotations(d.Annotations); err == nil {
		return f.TOCLength
	}
	return 0
}

func platformString(p *ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

func printInspect(w io.Writer, r inspectResult) error {
	fmt.Fprintf(w, "Reference: %s\nManifest:  %s (%s)\nConfig:    %s\n", r.Reference, r.Manifest, r.MediaType, r.Config)
	if r.Platform != "" {
		fmt.Fprintf(w, "Platform:  %s\n", r.Platform)
	}
	if r.Patterns > 0 {
		fmt.Fprintf(w, "Prefetch patterns: %d, matching %d files\n", r.Patterns, r.PatternFiles)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tDIGEST\tFORMAT\tSIZE\tINDEX\tFILES\tCONTENT\tPRIORITISED\tPATTERNS")
	for _, l := range r.Layers {
		if l.Error != "" {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t\t\t\t\t\t(%s)\n", l.Index, short(l.Digest), l.Format, humanBytes(l.Size), l.Error)
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\n", l.Index, short(l.Digest), l.Format, humanBytes(l.Size),
			orDash(l.IndexSize), l.Files, humanBytes(l.ContentSize), orDash(l.PrioritizedBytes), l.Patterns)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nFetched %v.\n", r.Cost)
	return err
}

// short abbreviates a digest as docker does.
func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func orDash(n int64) string {
	if n <= 0 {
		return "-"
	}
	return humanBytes(n)
}
