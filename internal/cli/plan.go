package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/overlay"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/spf13/cobra"
)

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
