package convert

import (
	"archive/tar"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/internal/iox"
)

// fileBudget is what the file systems of one manifest's layers may hold
// together while they are planned over: entries and bytes of names.
type fileBudget struct {
	mu        sync.Mutex
	files     int
	nameBytes int64
}

func (b *fileBudget) take(name, link string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.files--
	b.nameBytes -= int64(len(name) + len(link))
	if b.files < 0 || b.nameBytes < 0 {
		return fmt.Errorf("layers hold more files or longer names than planning may hold: %w", ErrTooLarge)
	}
	return nil
}

// tarFS is a read-only view, for the planners of package prefetch, of a
// tar stream spooled to a file: an index of its entries in memory (some
// 56 bytes each, plus the name), and the file for their contents. It
// shows the tar's entries as they are, whiteouts included; package
// prefetch's Overlay stacks such views.
//
// Names are cleaned as readers clean them; of an entry named twice, the
// later one counts, as when the tar is extracted. A hardlink shows its
// target's contents; a sparse file, which planners have no reason to
// read, fails to read; a name that is not valid UTF-8, which no fs.FS
// can spell, is left out. Open does not follow symbolic links: the
// Overlay resolves them itself.
type tarFS struct {
	ra      io.ReaderAt
	entries []tarEntry // sorted by parent directory, then base name
}

type tarEntry struct {
	name      string // cleaned, never "."
	link      string // a symbolic link's target
	off, size int64  // of the contents in the spooled tar; off < 0: unreadable
	mode      fs.FileMode
}

func (e *tarEntry) dirBase() (string, string) {
	if i := strings.LastIndexByte(e.name, '/'); i >= 0 {
		return e.name[:i], e.name[i+1:]
	}
	return ".", e.name
}

func compareEntries(a, b *tarEntry) int {
	ad, ab := a.dirBase()
	bd, bb := b.dirBase()
	return cmp.Or(strings.Compare(ad, bd), strings.Compare(ab, bb))
}

func cleanName(name string) string {
	if c := path.Clean("/" + name); c != "/" {
		return c[1:]
	}
	return "."
}

// indexTar reads the tar stream r to its end, copying every byte to
// spool, and returns the view of it whose contents are read from the
// spool through ra.
func indexTar(r io.Reader, spool io.Writer, ra io.ReaderAt, budget *fileBudget) (*tarFS, error) {
	cr := &iox.CountingReader{R: io.TeeReader(r, spool)}
	tr := tar.NewReader(cr)
	byName := make(map[string]int)
	var entries []tarEntry
	for {
		hdr, err := tr.Next()
		if errors.Is(err, tar.ErrInsecurePath) {
			err = nil // the name is cleaned below, as readers clean it
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("tar at offset %d: %w", cr.N, err)
		}
		name := cleanName(hdr.Name)
		if name == "." || hdr.Typeflag == tar.TypeXGlobalHeader || !fs.ValidPath(name) {
			continue // a name io/fs cannot spell (not UTF-8) cannot be planned
		}
		e := tarEntry{name: name, off: cr.N, size: hdr.Size, mode: hdr.FileInfo().Mode()}
		switch {
		case hdr.Typeflag == tar.TypeSymlink:
			e.link, e.off, e.size = hdr.Linkname, -1, int64(len(hdr.Linkname))
		case hdr.Typeflag == tar.TypeLink:
			i, ok := byName[cleanName(hdr.Linkname)]
			if !ok || !entries[i].mode.IsRegular() {
				continue // a link to nothing extracts to nothing
			}
			e.off, e.size, e.mode = entries[i].off, entries[i].size, entries[i].mode
		case zstdchunked.IsSparseTar(hdr.Typeflag, hdr.PAXRecords):
			e.off = -1
		case !e.mode.IsRegular():
			e.off, e.size = -1, 0
		}
		if err := budget.take(e.name, e.link); err != nil {
			return nil, err
		}
		if i, ok := byName[name]; ok {
			entries[i] = e
			continue
		}
		byName[name] = len(entries)
		entries = append(entries, e)
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return nil, err
	}
	// Parents the tar does not list exist all the same.
	for i := range entries {
		for d := path.Dir(entries[i].name); d != "."; d = path.Dir(d) {
			if _, ok := byName[d]; ok {
				break
			}
			if err := budget.take(d, ""); err != nil {
				return nil, err
			}
			byName[d] = len(entries)
			entries = append(entries, tarEntry{name: d, off: -1, mode: fs.ModeDir | 0o755})
		}
	}
	slices.SortFunc(entries, func(a, b tarEntry) int { return compareEntries(&a, &b) })
	return &tarFS{ra: ra, entries: entries}, nil
}

// lookup returns the entry named name, nil for the root.
func (t *tarFS) lookup(op, name string) (*tarEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return nil, nil
	}
	key := tarEntry{name: name}
	i, ok := slices.BinarySearchFunc(t.entries, &key, func(e tarEntry, k *tarEntry) int { return compareEntries(&e, k) })
	if !ok {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return &t.entries[i], nil
}

// children returns the entries of directory dir.
func (t *tarFS) children(dir string) []tarEntry {
	start, _ := slices.BinarySearchFunc(t.entries, dir, func(e tarEntry, d string) int {
		ed, _ := e.dirBase()
		return strings.Compare(ed, d)
	})
	end := start
	for end < len(t.entries) {
		if d, _ := t.entries[end].dirBase(); d != dir {
			break
		}
		end++
	}
	return t.entries[start:end]
}

func (t *tarFS) Lstat(name string) (fs.FileInfo, error) {
	e, err := t.lookup("lstat", name)
	if err != nil {
		return nil, err
	}
	return entryInfo{e}, nil
}

func (t *tarFS) Stat(name string) (fs.FileInfo, error) {
	fi, err := t.Lstat(name)
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: errors.ErrUnsupported}
	}
	return fi, err
}

func (t *tarFS) ReadLink(name string) (string, error) {
	e, err := t.lookup("readlink", name)
	if err != nil {
		return "", err
	}
	if e == nil || e.mode&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return e.link, nil
}

func (t *tarFS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := t.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if e != nil && !e.mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	kids := t.children(name)
	out := make([]fs.DirEntry, len(kids))
	for i := range kids {
		out[i] = fs.FileInfoToDirEntry(entryInfo{&kids[i]})
	}
	return out, nil
}

func (t *tarFS) Open(name string) (fs.File, error) {
	e, err := t.lookup("open", name)
	if err != nil {
		return nil, err
	}
	switch {
	case e == nil || e.mode.IsDir():
		entries, err := t.ReadDir(name)
		if err != nil {
			return nil, err
		}
		return &tarDir{info: entryInfo{e}, entries: entries}, nil
	case e.mode.IsRegular() && e.off >= 0:
		return &tarFile{SectionReader: io.NewSectionReader(t.ra, e.off, e.size), info: entryInfo{e}}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: errors.ErrUnsupported}
}

type entryInfo struct{ e *tarEntry } // e nil: the root

func (i entryInfo) Name() string {
	if i.e == nil {
		return "."
	}
	_, base := i.e.dirBase()
	return base
}

func (i entryInfo) Size() int64 {
	if i.e == nil {
		return 0
	}
	return i.e.size
}

func (i entryInfo) Mode() fs.FileMode {
	if i.e == nil {
		return fs.ModeDir | 0o755
	}
	return i.e.mode
}

func (i entryInfo) ModTime() time.Time { return time.Time{} }
func (i entryInfo) IsDir() bool        { return i.Mode().IsDir() }
func (i entryInfo) Sys() any           { return nil }

type tarFile struct {
	*io.SectionReader
	info entryInfo
}

func (f *tarFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *tarFile) Close() error               { return nil }

type tarDir struct {
	info    entryInfo
	entries []fs.DirEntry
}

func (d *tarDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *tarDir) Close() error               { return nil }
func (d *tarDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.Name(), Err: errors.New("is a directory")}
}

func (d *tarDir) ReadDir(n int) ([]fs.DirEntry, error) {
	return iox.NextEntries(&d.entries, n)
}
