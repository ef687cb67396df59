package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/overlay"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/spf13/cobra"
)

// emit prints v as one JSON document with --json, or calls text.
func (c *cli) emit(v any, text func(w io.Writer) error) error {
	if c.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return text(c.stdout)
}

// fsName turns an image path as users write it ("/etc/os-release",
// "etc", "/") into an io/fs name.
func fsName(p string) (string, error) {
	name := strings.TrimPrefix(path.Clean("/"+p), "/")
	if name == "" {
		name = "."
	}
	if !fs.ValidPath(name) {
		return "", usageErrorf("path %q: not a valid path in an image", p)
	}
	return name, nil
}

type lsEntry struct {
	Name    string    `json:"name"`
	Mode    string    `json:"mode"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modTime"`
	Link    string    `json:"link,omitempty"`
}

func (c *cli) lsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "ls REF [PATH]",
		Short: "List a directory of an image, fetching only its index",
		Long: `ls lists the directory PATH (default /) of the image REF, with its layers
merged as a container sees them. It reads only the layers' indexes, and prints
what that cost on standard error.`,
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			p := "/"
			if len(a) == 2 {
				p = a[1]
			}
			name, err := fsName(p)
			if err != nil {
				return err
			}
			return c.withImage(cmd, a[0], func(_ *image.Image, root *overlay.FS) error {
				infos, err := listing(root, name)
				if err != nil {
					return err
				}
				return c.emit(infos, func(w io.Writer) error {
					width := 1
					for _, e := range infos {
						width = max(width, len(strconv.FormatInt(e.Size, 10)))
					}
					for _, e := range infos {
						name := e.Name
						if e.Link != "" {
							name += " -> " + e.Link
						}
						if _, err := fmt.Fprintf(w, "%s %*d %s %s\n", e.Mode, width, e.Size, e.ModTime.Format("2006-01-02 15:04"), name); err != nil {
							return err
						}
					}
					return nil
				})
			})
		},
	}
}

// listing describes name: its entries if it is a directory, else itself.
func listing(root fs.FS, name string) ([]lsEntry, error) {
	fi, err := fs.Stat(root, name)
	if err != nil {
		return nil, err
	}
	describe := func(n string, fi fs.FileInfo) lsEntry {
		e := lsEntry{Name: path.Base(n), Mode: fi.Mode().String(), Size: fi.Size(), ModTime: fi.ModTime().UTC()}
		if fi.Mode()&fs.ModeSymlink != 0 {
			e.Link, _ = fs.ReadLink(root, n)
		}
		return e
	}
	if !fi.IsDir() {
		return []lsEntry{describe(name, fi)}, nil
	}
	entries, err := fs.ReadDir(root, name)
	if err != nil {
		return nil, err
	}
	out := make([]lsEntry, 0, len(entries))
	for _, d := range entries {
		n := path.Join(name, d.Name())
		fi, err := fs.Lstat(root, n)
		if err != nil {
			return nil, err
		}
		out = append(out, describe(n, fi))
	}
	return out, nil
}

func (c *cli) catCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cat REF PATH",
		Short: "Print a file of an image, fetching only its chunks",
		Long: `cat writes the file PATH of the image REF to standard output. It fetches the
layers' indexes and the chunks of that one file, checks each chunk's digest,
and prints what that cost on standard error.`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, err := fsName(a[1])
			if err != nil {
				return err
			}
			return c.withImage(cmd, a[0], func(_ *image.Image, root *overlay.FS) error {
				f, err := root.Open(name)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.Copy(c.stdout, f)
				return err
			})
		},
	}
}

func (c *cli) cpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cp REF PATH DEST",
		Short: "Copy a file or directory tree out of an image",
		Long: `cp copies PATH of the image REF to DEST on the local file system: a file, or
a directory with everything under it. Symbolic links are copied as links, and
modes are kept (without setuid, setgid and sticky bits). Only the chunks of
the copied files are fetched; what that cost is printed on standard error.`,
		Args: args(cobra.ExactArgs(3)),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, err := fsName(a[1])
			if err != nil {
				return err
			}
			return c.withImage(cmd, a[0], func(img *image.Image, root *overlay.FS) error {
				if err := prefetchTree(cmd.Context(), img, root, name); err != nil {
					return err
				}
				return copyOut(root, name, a[2])
			})
		},
	}
}

// copyOut copies name of root, a file or a tree, to dest. Names come from
// the image's index, which fs.WalkDir only yields cleaned and relative.
func copyOut(root fs.FS, name, dest string) error {
	fi, err := fs.Stat(root, name)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		if st, err := os.Stat(dest); err == nil && st.IsDir() {
			dest = filepath.Join(dest, path.Base(name))
		}
		return copyFile(root, name, dest, fi.Mode())
	}
	return fs.WalkDir(root, name, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, name), "/")
		if name == "." {
			rel = p
		}
		target := filepath.Join(dest, filepath.FromSlash(rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := fs.ReadLink(root, p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			return copyFile(root, p, target, info.Mode())
		}
		return nil // devices, FIFOs and sockets are not copied
	})
}

func copyFile(root fs.FS, name, dest string, mode fs.FileMode) error {
	in, err := root.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dest)
		return fmt.Errorf("copying %q: %w", name, err)
	}
	return out.Close()
}

// withImage opens ref lazily, runs fn on its merged file system, and
// reports the traffic on standard error.
func (c *cli) withImage(cmd *cobra.Command, ref string, fn func(img *image.Image, root *overlay.FS) error) error {
	return c.openImage(cmd.Context(), ref, true, func(s *session, img *image.Image) error {
		root, err := img.FS()
		if err != nil {
			return err
		}
		if err := fn(img, root); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				return fmt.Errorf("%s: %w", ref, err)
			}
			return err
		}
		fmt.Fprintf(c.stderr, "lazylayer: fetched %v\n", s.cost())
		return nil
	})
}

// prefetchBudget bounds what cp fetches ahead: the session's memory cache
// must hold it until the copy reads it.
const prefetchBudget = 256 << 20

// prefetchTree fetches the files under name, when they fit the budget,
// as one plan: a few coalesced requests per layer instead of one or more
// per file.
func prefetchTree(ctx context.Context, img *image.Image, root *overlay.FS, name string) error {
	var plan prefetch.Plan
	var total int64
	err := fs.WalkDir(root, name, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		loc, err := root.Resolve(p)
		if err != nil {
			return err
		}
		if total += loc.Info.Size(); total > prefetchBudget {
			return fs.SkipAll
		}
		plan.Add(prefetch.Item{Layer: loc.Layer, Path: loc.Path})
		return nil
	})
	if err != nil || total > prefetchBudget {
		return err // too much to hold: files are fetched as they are copied
	}
	e, err := img.PrefetchPlan(ctx, &plan)
	if err != nil {
		return err
	}
	return e.Wait()
}
