package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/lazylayer/lazylayer/image"
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
		res := verifyLayer{Index: i, Digest: l.Descriptor.Digest.String(), Format: formatName(l), OK: true}
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
