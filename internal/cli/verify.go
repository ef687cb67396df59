package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/overlay"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/spf13/cobra"
)

type verifyLayer struct {
	Index  int    `json:"index"`
	Digest string `json:"digest"`
	Format string `json:"format"`
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
}

func (c *cli) verifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify REF",
		Short: "Check every byte of an image against its digests",
		Long: `verify fetches every layer of the image REF once and checks what each kind of
puller checks: the blob against its descriptor's digest, the decompressed
blob against the config's DiffID (a runtime that pulls whole), the index
against the digest its annotations pin and every chunk against the index (a
lazy reader), and for zstd:chunked the tar its tar-split rebuilds against the
DiffID (containers/storage). Manifests and the config are checked when the
image is opened.

It exits with status 3 if any check fails, naming the layer and the check.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			return classify(c.openImage(ctx, a[0], false, func(s *session, img *image.Image) error {
				return c.verify(ctx, s, img)
			}))
		},
	}
}

// verify checks every layer of img, printing a line for each as it ends.
func (c *cli) verify(ctx context.Context, s *session, img *image.Image) error {
	var results []verifyLayer
	var failed []error
	for i, l := range img.Layers() {
		res := verifyLayer{Index: i, Digest: l.Descriptor.Digest.String(), Format: describeLayer(i, l).Format, OK: true}
		if err := img.VerifyLayer(ctx, i); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			res.OK, res.Error = false, err.Error()
			failed = append(failed, err)
		}
		results = append(results, res)
		if !c.json {
			status := "ok"
			if !res.OK {
				status = "FAILED: " + res.Error
			}
			fmt.Fprintf(c.stdout, "layer %d %s %s: %s\n", i, short(res.Digest), res.Format, status)
		}
	}
	if c.json {
		if err := c.emit(results, nil); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d layers failed verification: %w", len(failed), len(results), errors.Join(failed...))
	}
	fmt.Fprintf(c.stderr, "lazylayer: %d layers verified; fetched %v\n", len(results), s.cost())
	return nil
}

// classify gives an error that says bytes do not match their digests the
// exit code scripts tell apart from other failures. image.ErrDigestMismatch
// is the sentinel of every image package (registry, layout, archive).
func classify(err error) error {
	for _, mismatch := range []error{image.ErrDigestMismatch, reader.ErrChunkDigest, reader.ErrTOCDigest, reader.ErrCorrupt} {
		if errors.Is(err, mismatch) {
			return &exitError{exitMismatch, err}
		}
	}
	return err
}

func (c *cli) planCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "plan REF",
		Short: "Print the startup plan derived from an image's config",
		Long: `plan reads the config of the image REF and works out, without running
anything, which files a container of it reads while it starts: the entrypoint
and command found through PATH, their #! interpreters, ELF loader and shared
libraries, and the files libc and language runtimes read at start. It reads
only the layers' indexes and the few bytes of each file it must inspect.

It prints the plan as prefetch patterns, the form convert writes into images
(--prefetch patterns:FILE reads it back); with --json, the plan's items too.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return c.withImage(cmd, a[0], func(img *image.Image, root *overlay.FS) error {
				return c.printPlan(cmd.Context(), img, root)
			})
		},
	}
}

// printPlan prints the plan FromImageConfig makes for img.
func (c *cli) printPlan(ctx context.Context, img *image.Image, root *overlay.FS) error {
	plan, planErr := prefetch.FromImageConfig(ctx, root, img.Config().Config)
	if plan == nil {
		return planErr
	}
	if planErr != nil {
		fmt.Fprintf(c.stderr, "lazylayer: plan: %v\n", planErr)
	}
	patterns := plan.Patterns(-1, 0).String()
	type item struct {
		Layer  int    `json:"layer"`
		Path   string `json:"path"`
		Reason string `json:"reason"`
	}
	var items []item
	for _, it := range plan.Items() {
		items = append(items, item{it.Layer, it.Path, string(it.Reason)})
	}
	out := struct {
		Patterns string `json:"patterns"`
		Items    []item `json:"items"`
	}{patterns, items}
	return c.emit(out, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, patterns)
		return err
	})
}
