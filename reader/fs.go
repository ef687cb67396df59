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
	info := &fileInfo{name: baseName(name), node: n, l: l}
	switch {
	case n.isDir():
		return &dirFile{info: info}, nil
	case l.contentType(n) == toc.TypeReg:
		return l.openFile(n, info, name), nil
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
	return &fileInfo{name: baseName(name), node: n, l: l}, nil
}

// openFile opens the regular file n shows, at name.
func (l *Layer) openFile(n *node, info *fileInfo, name string) *file {
	id := n.content()
	return &file{layer: l, entry: l.entry(id), id: id, own: n.id, info: info, path: name}
}

// Lstat returns a FileInfo describing the named file without following a
// symbolic link in its last element.
func (l *Layer) Lstat(name string) (fs.FileInfo, error) {
	n, err := l.find("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: baseName(name), node: n, l: l}, nil
}

// ReadLink returns the target of the named symbolic link, as the index
// records it.
func (l *Layer) ReadLink(name string) (string, error) {
	n, err := l.find("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.typ != toc.TypeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return l.idx.linkName(n.id), nil
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
	return l.dirEntries(n.sorted), nil
}

// ReadFile returns the named file's whole content, fetching its chunks in
// parallel.
func (l *Layer) ReadFile(name string) ([]byte, error) {
	n, err := l.find("readfile", name, true)
	if err != nil {
		return nil, err
	}
	if l.contentType(n) != toc.TypeReg {
		if n.isDir() {
			return nil, &fs.PathError{Op: "readfile", Path: name, Err: errIsDir}
		}
		return []byte{}, nil
	}
	id := n.content()
	if l.idx.recs[id].nchunk == 1 {
		// One chunk is the whole file: hand it over without a copy
		// when nobody else holds it.
		if err := l.checkEntries(l.ctx, n.id, id); err != nil {
			return nil, &fs.PathError{Op: "readfile", Path: name, Err: l.closedErr(err)}
		}
		data, exclusive, err := l.chunkData(l.ctx, chunkRef{id, 0}, nil)
		if err != nil {
			return nil, &fs.PathError{Op: "readfile", Path: name, Err: fmt.Errorf("chunk 0: %w", l.closedErr(err))}
		}
		if !exclusive {
			data = bytes.Clone(data)
		}
		return data, nil
	}
	f := l.openFile(n, nil, name)
	data := make([]byte, f.entry.Size)
	if _, err := f.readAt(l.ctx, data, 0, "readfile"); err != nil {
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

// fileInfo describes a node of layer l under the name it was looked up
// by. It reads the layer's records, so that listing or walking the tree
// builds no entries (see records.entry).
type fileInfo struct {
	name string
	node *node
	l    *Layer
}

func (fi *fileInfo) Name() string { return fi.name }

func (fi *fileInfo) Size() int64 {
	id := fi.node.content()
	if id == implied {
		return 0
	}
	switch rec := &fi.l.idx.recs[id]; rec.typ {
	case toc.TypeReg:
		return rec.size
	case toc.TypeSymlink:
		return int64(len(fi.l.idx.linkName(id)))
	default:
		return 0
	}
}

func (fi *fileInfo) Mode() fs.FileMode {
	id := fi.node.content()
	if id == implied {
		return impliedEntry(fi.node.path).FileMode()
	}
	return fi.l.idx.fileMode(id)
}

func (fi *fileInfo) ModTime() time.Time {
	if id := fi.node.content(); id != implied {
		return fi.l.idx.modTime(id)
	}
	return time.Time{}
}

func (fi *fileInfo) IsDir() bool { return fi.node.isDir() }

// Sys returns the *toc.Entry listed under the name.
func (fi *fileInfo) Sys() any {
	if fi.node.id == implied {
		return impliedEntry(fi.node.path)
	}
	return fi.l.entry(fi.node.id)
}

func (fi *fileInfo) String() string { return fs.FormatFileInfo(fi) }

// dirEntry is a directory listing's view of a child; it does not follow
// symbolic links, as fs.DirEntry requires.
type dirEntry struct{ fileInfo }

func (d *dirEntry) Type() fs.FileMode          { return d.Mode().Type() }
func (d *dirEntry) Info() (fs.FileInfo, error) { return &d.fileInfo, nil }
func (d *dirEntry) String() string             { return fs.FormatDirEntry(d) }

func (l *Layer) dirEntries(children []*node) []fs.DirEntry {
	out := make([]fs.DirEntry, 0, len(children))
	for _, c := range children {
		if c.linkErr() != nil {
			// A broken hard link has no content to describe; list it as
			// the link entry so the name stays visible and Open reports
			// why it fails.
			out = append(out, &dirEntry{fileInfo{name: path.Base(c.path), node: &node{path: c.path, id: c.id, typ: c.typ}, l: l}})
			continue
		}
		out = append(out, &dirEntry{fileInfo{name: path.Base(c.path), node: c, l: l}})
	}
	return out
}
