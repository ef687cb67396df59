package prefetch

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/lazylayer/lazylayer/toc"
)

// ErrSymlinkLoop is returned (wrapped in an *fs.PathError) when resolving
// a path needs more than 40 symbolic links, the limit Linux applies.
var ErrSymlinkLoop = errors.New("too many levels of symbolic links")

const (
	maxSymlinks   = 40
	maxLinkTarget = 4096 // PATH_MAX
	whiteoutPre   = ".wh."
	opaqueMarker  = ".wh..wh..opq"
)

// Overlay is a read-only view of an image's layers stacked the way an OCI
// runtime stacks them with overlayfs:
//
//   - an upper layer's entry wins over a lower layer's entry of the same
//     name, and a non-directory hides everything a lower layer holds at or
//     below its name;
//   - a whiteout file ".wh.<name>" hides <name> in all lower layers;
//   - a directory holding ".wh..wh..opq" is opaque: lower layers' contents
//     of that directory are hidden;
//   - whiteout and opaque marker files themselves are never visible.
//
// Symbolic links are resolved inside the view, as a chrooted process sees
// them: absolute targets start again at the image root, ".." never climbs
// above the root, and a link in one layer may point to a file another layer
// provides.
//
// Overlay implements fs.FS, fs.StatFS, fs.ReadDirFS and fs.ReadLinkFS, so
// fs.WalkDir and fs.ReadFile work on the merged view. Open and Stat follow
// symbolic links; Lstat and ReadLink do not.
//
// Layers that implement fs.ReadLinkFS (os.DirFS, fstest.MapFS, lazy
// layers) expose their symbolic links. For other layers, a link is still
// recognised when its FileInfo.Sys() is a *toc.Entry that carries the
// target; otherwise the layer's Stat decides what the name is.
//
// An Overlay is safe for concurrent use if its layers are.
type Overlay struct {
	layers []fs.FS
}

// NewOverlay returns the view of layers stacked bottom to top: layers[0]
// is the lowest (base) layer.
func NewOverlay(layers ...fs.FS) *Overlay {
	return &Overlay{layers: slices.Clone(layers)}
}

// Layers returns the number of layers.
func (o *Overlay) Layers() int { return len(o.layers) }

// Location is where a name of the merged view lives.
type Location struct {
	// Layer is the index of the layer that provides the entry.
	Layer int
	// Path is the entry's name within that layer once every symbolic link
	// has been resolved: slash-separated, relative, "." for the root.
	Path string
	Info fs.FileInfo
}

// Resolve follows name through every symbolic link and returns the entry
// it denotes and the layer that provides it. name may be absolute or
// relative to the image root.
func (o *Overlay) Resolve(name string) (Location, error) {
	return o.walk("resolve", name, true)
}

// Open opens the named file of the merged view, following symbolic links.
// A directory's ReadDir lists the merged contents.
func (o *Overlay) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	loc, err := o.walk("open", name, true)
	if err != nil {
		return nil, err
	}
	f, err := o.layers[loc.Layer].Open(loc.Path)
	if err != nil {
		return nil, err
	}
	if !loc.Info.IsDir() {
		return f, nil
	}
	entries, err := o.readDir(loc)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &mergedDir{File: f, name: name, entries: entries}, nil
}

// Stat returns the FileInfo of the named file, following symbolic links.
func (o *Overlay) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	loc, err := o.walk("stat", name, true)
	return loc.Info, err
}

// Lstat returns the FileInfo of the named file without following a
// symbolic link in its last element.
func (o *Overlay) Lstat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrInvalid}
	}
	loc, err := o.walk("lstat", name, false)
	return loc.Info, err
}

// ReadLink returns the target of the named symbolic link.
func (o *Overlay) ReadLink(name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	loc, err := o.walk("readlink", name, false)
	if err != nil {
		return "", err
	}
	if loc.Info.Mode()&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return readLink(o.layers[loc.Layer], loc.Path, loc.Info)
}

// ReadDir returns the merged, sorted entries of the named directory.
func (o *Overlay) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	loc, err := o.walk("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !loc.Info.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	return o.readDir(loc)
}

var errNotDir = errors.New("not a directory")

// walk resolves name one element at a time. Symbolic links are followed
// in every element but the last, and in the last too when follow is set.
func (o *Overlay) walk(op, name string, follow bool) (Location, error) {
	fail := func(err error) (Location, error) {
		return Location{}, &fs.PathError{Op: op, Path: name, Err: err}
	}
	if len(o.layers) == 0 {
		return fail(fs.ErrNotExist)
	}
	resolved := "." // a directory of the merged view, free of links
	rest := splitPath(name)
	links := 0
	var last Location
	for len(rest) > 0 {
		elem := rest[0]
		rest = rest[1:]
		if elem == ".." {
			resolved = path.Dir(resolved)
			last = Location{}
			continue
		}
		p := path.Join(resolved, elem)
		layer, fi, err := o.lookup(p)
		if err != nil {
			return fail(err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 && (len(rest) > 0 || follow) {
			if links++; links > maxSymlinks {
				return fail(ErrSymlinkLoop)
			}
			target, err := readLink(o.layers[layer], p, fi)
			if err != nil {
				return fail(err)
			}
			if strings.HasPrefix(target, "/") {
				resolved = "."
			}
			rest = append(splitPath(target), rest...)
			last = Location{}
			continue
		}
		if len(rest) > 0 && !fi.IsDir() {
			return fail(errNotDir)
		}
		resolved = p
		last = Location{Layer: layer, Path: p, Info: fi}
	}
	if last.Info != nil {
		return last, nil
	}
	// The walk ended on ".." or on a link to a directory: resolved is a
	// link-free directory of the view.
	if resolved == "." {
		return o.root(fail)
	}
	layer, fi, err := o.lookup(resolved)
	if err != nil {
		return fail(err)
	}
	return Location{Layer: layer, Path: resolved, Info: fi}, nil
}

func (o *Overlay) root(fail func(error) (Location, error)) (Location, error) {
	top := len(o.layers) - 1
	fi, err := fs.Stat(o.layers[top], ".")
	if err != nil {
		return fail(err)
	}
	return Location{Layer: top, Path: ".", Info: fi}, nil
}

// splitPath splits a slash-separated path into its non-empty, non-"."
// elements.
func splitPath(name string) []string {
	var elems []string
	for e := range strings.SplitSeq(name, "/") {
		if e != "" && e != "." {
			elems = append(elems, e)
		}
	}
	return elems
}

// lookup finds the entry for p, whose parent is a directory of the merged
// view, searching layers from the top. It does not follow a link at p.
func (o *Overlay) lookup(p string) (int, fs.FileInfo, error) {
	elems := strings.Split(p, "/")
	if strings.HasPrefix(elems[len(elems)-1], whiteoutPre) {
		return 0, nil, fs.ErrNotExist
	}
	for i := len(o.layers) - 1; i >= 0; i-- {
		fi, lowerHidden := probe(o.layers[i], elems)
		if fi != nil {
			return i, fi, nil
		}
		if lowerHidden {
			break
		}
	}
	return 0, nil, fs.ErrNotExist
}

// probe looks up the path made of elems in one layer. It returns the
// entry if the layer has it, and whether the layer hides the path in the
// layers below it: by a whiteout, an opaque directory, or a non-directory
// at the path or one of its parents.
func probe(layer fs.FS, elems []string) (fi fs.FileInfo, lowerHidden bool) {
	dir := "."
	opaque := exists(layer, opaqueMarker)
	for k, elem := range elems {
		if exists(layer, path.Join(dir, whiteoutPre+elem)) {
			return nil, true
		}
		p := path.Join(dir, elem)
		info, err := fs.Lstat(layer, p)
		if err != nil {
			return nil, opaque
		}
		if k == len(elems)-1 {
			hides := opaque || !info.IsDir() || exists(layer, path.Join(p, opaqueMarker))
			return info, hides
		}
		if !info.IsDir() {
			return nil, true
		}
		dir = p
		opaque = opaque || exists(layer, path.Join(dir, opaqueMarker))
	}
	return nil, false
}

func exists(layer fs.FS, name string) bool {
	_, err := fs.Lstat(layer, name)
	return err == nil
}

// readLink returns the target of the link name in layer.
func readLink(layer fs.FS, name string, fi fs.FileInfo) (string, error) {
	target, err := fs.ReadLink(layer, name)
	if err != nil {
		e, ok := fi.Sys().(*toc.Entry)
		if !ok || e.Type != toc.TypeSymlink {
			return "", err
		}
		target = e.LinkName
	}
	if len(target) > maxLinkTarget {
		return "", fmt.Errorf("symbolic link target of %d bytes: too long", len(target))
	}
	return target, nil
}

// readDir merges the contents of the directory at loc across the layers.
func (o *Overlay) readDir(loc Location) ([]fs.DirEntry, error) {
	elems := splitPath(loc.Path)
	seen := make(map[string]bool)
	var merged []fs.DirEntry
	for i := len(o.layers) - 1; i >= 0; i-- {
		var fi fs.FileInfo
		lowerHidden := false
		if len(elems) == 0 {
			fi, _ = fs.Stat(o.layers[i], ".")
			lowerHidden = exists(o.layers[i], opaqueMarker)
		} else {
			fi, lowerHidden = probe(o.layers[i], elems)
		}
		if fi != nil && fi.IsDir() {
			entries, err := fs.ReadDir(o.layers[i], loc.Path)
			if err != nil {
				return nil, &fs.PathError{Op: "readdir", Path: loc.Path, Err: err}
			}
			for _, e := range entries {
				name := e.Name()
				if hidden, ok := strings.CutPrefix(name, whiteoutPre); ok {
					seen[hidden] = true // also hides the marker itself
					continue
				}
				if !seen[name] {
					seen[name] = true
					merged = append(merged, e)
				}
			}
		}
		if lowerHidden {
			break
		}
	}
	slices.SortFunc(merged, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return merged, nil
}

// mergedDir is an open directory of the merged view.
type mergedDir struct {
	fs.File
	name    string
	entries []fs.DirEntry
}

func (d *mergedDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}

func (d *mergedDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if n <= 0 {
		all := d.entries
		d.entries = nil
		return all, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.entries))
	batch := d.entries[:n]
	d.entries = d.entries[n:]
	return batch, nil
}

// readPrefix returns up to n bytes from the start of the named file.
func (o *Overlay) readPrefix(loc Location, n int) ([]byte, error) {
	f, err := o.layers[loc.Layer].Open(loc.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	got, err := io.ReadFull(f, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	return buf[:got], err
}
