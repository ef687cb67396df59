package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/lazylayer/lazylayer/internal/iox"
	"github.com/lazylayer/lazylayer/toc"
)

// ErrSymlinkLoop is returned (wrapped in an *fs.PathError) when resolving
// a path needs more than 40 symbolic links, the limit Linux applies.
var ErrSymlinkLoop = errors.New("too many levels of symbolic links")

const (
	maxSymlinks  = 40
	whiteoutPre  = ".wh."
	opaqueMarker = ".wh..wh..opq"
)

// FS is a read-only view of an image's layers stacked the way an OCI
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
// FS implements fs.FS, fs.StatFS, fs.ReadDirFS and fs.ReadLinkFS, so
// fs.WalkDir and fs.ReadFile work on the merged view. Open and Stat follow
// symbolic links; Lstat and ReadLink do not.
//
// Layers that implement fs.ReadLinkFS (os.DirFS, fstest.MapFS, lazy
// layers) expose their symbolic links. For other layers, a link is still
// recognised when its FileInfo.Sys() is a *toc.Entry that carries the
// target; otherwise the layer's Stat decides what the name is.
//
// An FS is safe for concurrent use if its layers are.
type FS struct {
	layers []fs.FS
}

// New returns the view of layers stacked bottom to top: layers[0] is the
// lowest (base) layer.
func New(layers ...fs.FS) *FS {
	return &FS{layers: slices.Clone(layers)}
}

// Len returns the number of layers.
func (o *FS) Len() int { return len(o.layers) }

// Layer returns layer i, as given to New: a Location's Layer indexes it,
// so that a caller reads a resolved file straight from the layer that
// provides it.
func (o *FS) Layer(i int) fs.FS { return o.layers[i] }

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
func (o *FS) Resolve(name string) (Location, error) {
	return o.walk("resolve", name, true)
}

// A Resolver resolves many names in one FS and remembers the directories
// it passes through: a planner resolves thousands of names under a few
// hundred directories, and working out which layers contribute to a
// directory costs several lookups per layer. It assumes the layers do not
// change while it is in use, and is not safe for concurrent use. Its
// memory grows with the directories it has passed through.
type Resolver struct {
	o    *FS
	dirs map[string]*dirState // by link-free path
}

// NewResolver returns a Resolver of o with nothing remembered yet.
func (o *FS) NewResolver() *Resolver {
	return &Resolver{o: o, dirs: make(map[string]*dirState)}
}

// Resolve is FS.Resolve.
func (r *Resolver) Resolve(name string) (Location, error) {
	loc, _, err := r.o.walkDir("resolve", name, true, r.dirs)
	return loc, err
}

// Open opens the named file of the merged view, following symbolic links.
// A directory's ReadDir lists the merged contents.
func (o *FS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	loc, dir, err := o.walkDir("open", name, true, nil)
	if err != nil {
		return nil, err
	}
	f, err := o.layers[loc.Layer].Open(loc.Path)
	if err != nil {
		return nil, err
	}
	if dir == nil {
		return f, nil
	}
	entries, err := o.readDir(dir)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &mergedDir{File: f, name: name, entries: entries}, nil
}

// Stat returns the FileInfo of the named file, following symbolic links.
func (o *FS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	loc, err := o.walk("stat", name, true)
	return loc.Info, err
}

// Lstat returns the FileInfo of the named file without following a
// symbolic link in its last element.
func (o *FS) Lstat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrInvalid}
	}
	loc, err := o.walk("lstat", name, false)
	return loc.Info, err
}

// ReadLink returns the target of the named symbolic link.
func (o *FS) ReadLink(name string) (string, error) {
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
func (o *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	_, dir, err := o.walkDir("readdir", name, true, nil)
	if err != nil {
		return nil, err
	}
	if dir == nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	return o.readDir(dir)
}

var errNotDir = errors.New("not a directory")

// dirState is a directory of the merged view, free of links, and which
// layers contribute entries to it: layer i does when it has the directory
// and no upper layer hides it there (by a whiteout, an opaque directory or
// a non-directory at the path or above).
type dirState struct {
	path   string // "." for the root
	layers []bool
	loc    Location // the directory's own entry; unset for the root
}

// rootState is the state of the root, which every layer has; an opaque
// root hides the layers below it.
func (o *FS) rootState() (*dirState, error) {
	st := &dirState{path: ".", layers: make([]bool, len(o.layers))}
	for i := len(o.layers) - 1; i >= 0; i-- {
		st.layers[i] = true
		if opaque, err := exists(o.layers[i], opaqueMarker); err != nil || opaque {
			return st, err
		}
	}
	return st, nil
}

// lookupIn finds the entry elem of dir, searching its contributing layers
// from the top. It does not follow a link.
func (o *FS) lookupIn(dir *dirState, elem string) (int, fs.FileInfo, error) {
	if strings.HasPrefix(elem, whiteoutPre) {
		return 0, nil, fs.ErrNotExist
	}
	p := joinElem(dir.path, elem)
	for i := len(o.layers) - 1; i >= 0; i-- {
		if !dir.layers[i] {
			continue
		}
		if whiteout, err := exists(o.layers[i], joinElem(dir.path, whiteoutPre+elem)); err != nil {
			return 0, nil, err
		} else if whiteout {
			break
		}
		fi, err := fs.Lstat(o.layers[i], p)
		if err == nil {
			return i, fi, nil
		}
		if !absent(err) {
			return 0, nil, err
		}
	}
	return 0, nil, fs.ErrNotExist
}

// descend returns the state of the subdirectory elem of dir, which the
// caller found to be a directory.
func (o *FS) descend(dir *dirState, elem string) (*dirState, error) {
	p := path.Join(dir.path, elem)
	st := &dirState{path: p, layers: make([]bool, len(o.layers))}
	for i := len(o.layers) - 1; i >= 0; i-- {
		if !dir.layers[i] {
			continue
		}
		if whiteout, err := exists(o.layers[i], path.Join(dir.path, whiteoutPre+elem)); err != nil || whiteout {
			return st, err
		}
		fi, err := fs.Lstat(o.layers[i], p)
		if absent(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			break
		}
		st.layers[i] = true
		if opaque, err := exists(o.layers[i], path.Join(p, opaqueMarker)); err != nil || opaque {
			return st, err
		}
	}
	return st, nil
}

// maxPathLen bounds a name and every link target (Linux's PATH_MAX), and
// maxWalkSteps the elements one resolution visits, links included: real
// paths have tens, so a hostile chain of long link targets fails early
// instead of costing thousands of lookups per name.
const (
	maxPathLen   = 4096
	maxWalkSteps = 1024
)

// walk resolves name one element at a time, keeping the directories it
// passes through so that ".." returns to the real parent. Symbolic links
// are followed in every element but the last, and in the last too when
// follow is set. It returns the entry and, if it is a directory, its state.
func (o *FS) walk(op, name string, follow bool) (Location, error) {
	loc, _, err := o.walkDir(op, name, follow, nil)
	return loc, err
}

// walkDir is walk that also returns the state of a directory it ends on.
// dirs, if not nil, holds the states of directories already visited, by
// path, and gets the states this walk works out.
func (o *FS) walkDir(op, name string, follow bool, dirs map[string]*dirState) (Location, *dirState, error) {
	fail := func(err error) (Location, *dirState, error) {
		return Location{}, nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	if len(o.layers) == 0 {
		return fail(fs.ErrNotExist)
	}
	if len(name) > maxPathLen {
		return fail(errNameTooLong)
	}
	root := dirs["."]
	if root == nil {
		var err error
		if root, err = o.rootState(); err != nil {
			return fail(err)
		}
		if dirs != nil {
			dirs["."] = root
		}
	}
	stack := []*dirState{root}
	rest := splitPath(name)
	links, steps := 0, 0
	var last Location
	for len(rest) > 0 {
		if steps++; steps > maxWalkSteps {
			return fail(errNameTooLong)
		}
		elem := rest[0]
		rest = rest[1:]
		dir := stack[len(stack)-1]
		if elem == ".." {
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			last = Location{}
			continue
		}
		p := joinElem(dir.path, elem)
		if st := dirs[p]; st != nil {
			// A directory an earlier walk passed through.
			last = st.loc
			stack = append(stack, st)
			continue
		}
		layer, fi, err := o.lookupIn(dir, elem)
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
				stack = stack[:1]
			}
			rest = append(splitPath(target), rest...)
			last = Location{}
			continue
		}
		if len(rest) > 0 && !fi.IsDir() {
			return fail(errNotDir)
		}
		last = Location{Layer: layer, Path: p, Info: fi}
		if fi.IsDir() {
			st, err := o.descend(dir, elem)
			if err != nil {
				return fail(err)
			}
			st.loc = last
			if dirs != nil {
				dirs[p] = st
			}
			stack = append(stack, st)
		}
	}
	top := stack[len(stack)-1]
	if last.Info != nil {
		if !last.Info.IsDir() {
			return last, nil, nil
		}
		return last, top, nil
	}
	// The walk ended on ".." or on a link to a directory: the directory on
	// top of the stack is the answer; its topmost layer describes it.
	for i := len(o.layers) - 1; i >= 0; i-- {
		if !top.layers[i] {
			continue
		}
		fi, err := fs.Stat(o.layers[i], top.path)
		if err != nil {
			return fail(err)
		}
		return Location{Layer: i, Path: top.path, Info: fi}, top, nil
	}
	return fail(fs.ErrNotExist)
}

var errNameTooLong = errors.New("file name too long")

// joinElem is path.Join(dir, elem) for a clean directory path and one
// element that is neither empty, "." nor "..".
func joinElem(dir, elem string) string {
	if dir == "." {
		return elem
	}
	return dir + "/" + elem
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

// exists reports whether layer has name. An error other than the name's
// absence is returned, not taken for absence: a layer that fails to answer
// (a lazy layer whose fetch failed) must not let lower layers show what it
// hides.
func exists(layer fs.FS, name string) (bool, error) {
	_, err := fs.Lstat(layer, name)
	if absent(err) {
		return false, nil
	}
	return err == nil, err
}

// absent reports whether err says a name does not exist. os.DirFS answers
// ENOTDIR for a name under a file.
func absent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
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
	if len(target) > maxPathLen {
		return "", fmt.Errorf("symbolic link target of %d bytes: %w", len(target), errNameTooLong)
	}
	return target, nil
}

// readDir merges the contents of a directory across its contributing
// layers, from the top: an upper entry or whiteout hides a lower entry of
// the same name.
func (o *FS) readDir(dir *dirState) ([]fs.DirEntry, error) {
	seen := make(map[string]bool)
	var merged []fs.DirEntry
	for i := len(o.layers) - 1; i >= 0; i-- {
		if !dir.layers[i] {
			continue
		}
		entries, err := fs.ReadDir(o.layers[i], dir.path)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: dir.path, Err: err}
		}
		for _, e := range entries {
			name := e.Name()
			if hidden, ok := strings.CutPrefix(name, whiteoutPre); ok {
				seen[hidden] = true // also hides the opaque marker itself
				continue
			}
			if !seen[name] {
				seen[name] = true
				merged = append(merged, e)
			}
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
	return iox.NextEntries(&d.entries, n)
}
