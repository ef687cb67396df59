package dirtar

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Stats summarises the tree a Write call archived.
type Stats struct {
	Files int   // regular files
	Bytes int64 // their total size
}

// Write writes the tree under dir to w as an uncompressed tar stream:
// entries in lexical walk order with names relative to dir, ownership
// names cleared and times truncated to seconds, so the same tree always
// gives the same bytes. Regular files, directories and symlinks are kept;
// other kinds (sockets, devices, fifos) are skipped, and hard links are
// stored as separate regular files.
func Write(w io.Writer, dir string) (Stats, error) {
	return write(w, dir, dir)
}

// WriteTrees writes the trees at the absolute paths roots (directories
// or single files) to w as one tar stream, as Write does, each entry
// named by its path without the leading slash ("usr/lib/jvm/..."): the
// layer that puts those trees where they are on this machine. Parent
// directories of a root are not written.
func WriteTrees(w io.Writer, roots ...string) (Stats, error) {
	for _, root := range roots {
		if !filepath.IsAbs(root) {
			return Stats{}, fmt.Errorf("dirtar: %s: not an absolute path", root)
		}
	}
	return write(w, "/", roots...)
}

// write writes the trees at roots to w, named relative to base.
func write(w io.Writer, base string, roots ...string) (Stats, error) {
	var st Stats
	tw := tar.NewWriter(w)
	for _, root := range roots {
		s, err := walk(tw, root, base)
		st.Files, st.Bytes = st.Files+s.Files, st.Bytes+s.Bytes
		if err != nil {
			return st, err
		}
	}
	return st, tw.Close()
}

// walk writes the tree at dir to tw, its entries named relative to
// base; base itself is not written.
func walk(tw *tar.Writer, dir, base string) (Stats, error) {
	var st Stats
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(base, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		switch {
		case fi.Mode().IsRegular(), fi.IsDir():
		case fi.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			return nil
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return fmt.Errorf("dirtar: %s: %w", p, err)
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.ModTime = hdr.ModTime.Truncate(time.Second)
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("dirtar: %s: %w", p, err)
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("dirtar: %w", err)
		}
		defer f.Close()
		n, err := io.Copy(tw, f)
		if err != nil {
			return fmt.Errorf("dirtar: %s: %w", p, err)
		}
		st.Files++
		st.Bytes += n
		return nil
	})
	return st, err
}
