package reader

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/lazylayer/lazylayer/toc"
)

var errNotExist = fs.ErrNotExist

var (
	_ fs.FS         = (*Layer)(nil)
	_ fs.StatFS     = (*Layer)(nil)
	_ fs.ReadDirFS  = (*Layer)(nil)
	_ fs.ReadFileFS = (*Layer)(nil)
	_ fs.ReadLinkFS = (*Layer)(nil)
)

// Open opens the named file, following symbolic links. A regular file
// implements io.ReaderAt, io.Seeker and io.WriterTo as well as fs.File;
// a directory implements fs.ReadDirFile.
func (l *Layer) Open(name string) (fs.File, error) {
	n, err := l.find("open", name, true)
	if err != nil {
		return nil, err
	}
	info := &fileInfo{name: baseName(name), node: n}
	switch {
	case n.isDir():
		return &dirFile{info: info}, nil
	case n.content().Type == toc.TypeReg:
		return &file{layer: l, entry: n.content(), info: info, path: name}, nil
	default:
		return &specialFile{info: info}, nil
	}
}

// Stat returns a FileInfo describing the named file, following symbolic
// links.
func (l *Layer) Stat(name string) (fs.FileInfo, error) {
	n, err := l.find("stat", name, true)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: baseName(name), node: n}, nil
}

// Lstat returns a FileInfo describing the named file without following a
// symbolic link in its last element.
func (l *Layer) Lstat(name string) (fs.FileInfo, error) {
	n, err := l.find("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: baseName(name), node: n}, nil
}

// ReadLink returns the target of the named symbolic link, as the index
// records it.
func (l *Layer) ReadLink(name string) (string, error) {
	n, err := l.find("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.entry.Type != toc.TypeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return n.entry.LinkName, nil
}

// ReadDir returns the named directory's entries sorted by name.
func (l *Layer) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := l.find("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !n.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	return dirEntries(n.sorted), nil
}

// ReadFile returns the named file's whole content, fetching its chunks in
// parallel.
func (l *Layer) ReadFile(name string) ([]byte, error) {
	n, err := l.find("readfile", name, true)
	if err != nil {
		return nil, err
	}
	if n.content().Type != toc.TypeReg {
		if n.isDir() {
			return nil, &fs.PathError{Op: "readfile", Path: name, Err: errIsDir}
		}
		return []byte{}, nil
	}
	if len(n.content().Chunks) == 1 {
		// One chunk is the whole file: hand it over without a copy
		// when nobody else holds it.
		data, exclusive, err := l.chunkData(l.ctx, n.content(), 0, nil)
		if err != nil {
			return nil, &fs.PathError{Op: "readfile", Path: name, Err: fmt.Errorf("chunk 0: %w", l.closedErr(err))}
		}
		if !exclusive {
			data = bytes.Clone(data)
		}
		return data, nil
	}
	f := &file{layer: l, entry: n.content(), path: name}
	data := make([]byte, n.content().Size)
	if _, err := f.readAt(data, 0, "readfile"); err != nil {
		return nil, err
	}
	if err := f.sum.add(l, f.entry, data, 0); err != nil {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	return data, nil
}

// find validates name and looks it up, wrapping failures in a PathError.
func (l *Layer) find(op, name string, followLast bool) (*node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if l.ctx.Err() != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrClosed}
	}
	n, err := l.lookup(name, followLast)
	if err == nil && n.linkErr() != nil {
		err = n.linkErr()
	}
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return n, nil
}

var (
	errIsDir  = errors.New("is a directory")
	errNotDir = errors.New("not a directory")
)

func baseName(name string) string {
	if name == "." {
		return "."
	}
	return path.Base(name)
}

// fileInfo describes a node under the name it was looked up by.
type fileInfo struct {
	name string
	node *node
}

func (fi *fileInfo) Name() string { return fi.name }

func (fi *fileInfo) Size() int64 {
	switch c := fi.node.content(); c.Type {
	case toc.TypeReg:
		return c.Size
	case toc.TypeSymlink:
		return int64(len(c.LinkName))
	default:
		return 0
	}
}

func (fi *fileInfo) Mode() fs.FileMode  { return fi.node.content().FileMode() }
func (fi *fileInfo) ModTime() time.Time { return fi.node.content().ModTime }
func (fi *fileInfo) IsDir() bool        { return fi.node.isDir() }

// Sys returns the *toc.Entry listed under the name.
func (fi *fileInfo) Sys() any { return fi.node.entry }

func (fi *fileInfo) String() string { return fs.FormatFileInfo(fi) }

// dirEntry is a directory listing's view of a child; it does not follow
// symbolic links, as fs.DirEntry requires.
type dirEntry struct{ fileInfo }

func (d *dirEntry) Type() fs.FileMode          { return d.Mode().Type() }
func (d *dirEntry) Info() (fs.FileInfo, error) { return &d.fileInfo, nil }
func (d *dirEntry) String() string             { return fs.FormatDirEntry(d) }

func dirEntries(children []*node) []fs.DirEntry {
	out := make([]fs.DirEntry, 0, len(children))
	for _, c := range children {
		if c.linkErr() != nil {
			// A broken hard link has no content to describe; list it as
			// the link entry so the name stays visible and Open reports
			// why it fails.
			out = append(out, &dirEntry{fileInfo{name: path.Base(c.path), node: &node{path: c.path, entry: c.entry}}})
			continue
		}
		out = append(out, &dirEntry{fileInfo{name: path.Base(c.path), node: c}})
	}
	return out
}
