package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/gzip"
)

// treeStats summarises a directory tree.
type treeStats struct {
	Files int   // regular files
	Bytes int64 // their total size
}

// writeTar writes dir to w as an uncompressed tar stream: entries in
// lexical walk order, ownership names cleared and times truncated to
// seconds, so the same tree always gives the same bytes. Regular files,
// directories and symlinks are kept; other kinds (sockets, devices) are
// skipped, and hard links are stored as separate regular files.
func writeTar(w io.Writer, dir string) (treeStats, error) {
	var st treeStats
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
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
			return fmt.Errorf("tar %s: %w", p, err)
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.ModTime = hdr.ModTime.Truncate(time.Second)
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("tar %s: %w", p, err)
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.Copy(tw, f)
		if err != nil {
			return fmt.Errorf("tar %s: %w", p, err)
		}
		st.Files++
		st.Bytes += n
		return nil
	})
	if err != nil {
		return st, err
	}
	return st, tw.Close()
}

// gzipBytes compresses r at klauspost/compress's default level, the level
// `docker save` and most build tools use for layers.
func gzipBytes(r io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := io.Copy(zw, r); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// estimateCompressed returns the compressed size of the trace's files if
// each were gzipped on its own: a stand-in for the bytes of the chunks a
// lazy reader needs until a mode computes them from the real chunk table.
func estimateCompressed(root string, trace []TraceFile) (int64, error) {
	var total int64
	for _, tf := range trace {
		f, err := os.Open(filepath.Join(root, filepath.FromSlash(tf.Name)))
		if err != nil {
			return 0, err
		}
		cw := &countingWriter{}
		zw := gzip.NewWriter(cw)
		_, err = io.Copy(zw, f)
		f.Close()
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			return 0, fmt.Errorf("estimate %s: %w", tf.Name, err)
		}
		total += cw.n
	}
	return total, nil
}

// countingWriter counts and discards what is written to it.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
