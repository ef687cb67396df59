package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
)

// Whiteouts as OCI layers spell them, and as overlayfs wants them in a
// lower directory: a character device 0/0 for a deleted name, and the
// trusted.overlay.opaque xattr on a directory that hides what is below.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
)

// cacheTimeout is how long the kernel may keep names and attributes: a
// layer never changes, so as long as it likes.
const cacheTimeout = 24 * time.Hour

// mountLayer mounts l read-only at dir through FUSE, translating the
// layer's whiteouts into overlayfs's, so that dir can be a lowerdir.
// Reads pass the kernel's interrupts to the reader as cancellation.
// The caller unmounts with the returned server's Unmount.
func mountLayer(dir string, l *reader.Layer, name string) (*fuse.Server, error) {
	lfs := &layerFS{layer: l, inos: map[string]uint64{}}
	timeout := cacheTimeout
	server, err := gofs.Mount(dir, &node{fs: lfs, name: "."}, &gofs.Options{
		MountOptions: fuse.MountOptions{
			DirectMount:  true,
			AllowOther:   true,
			FsName:       "lazylayer:" + name,
			Name:         "lazylayer",
			Options:      []string{"ro"},
			MaxReadAhead: 1 << 20,
			// overlayfs asks a lower layer for its trusted.overlay.*
			// attributes at every lookup, and exec for file
			// capabilities: one round trip each, ~400 in a Python
			// start. A layer with nothing to answer them, most of
			// them, turns them off in the kernel.
			DisableXAttrs: !usesXattrs(l),
		},
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("mount layer %s at %s: %w", name, dir, err)
	}
	return server, nil
}

// usesXattrs reports whether the mount of l has an extended attribute to
// show: an entry's own, or the opaque mark of a directory (see xattrs).
func usesXattrs(l *reader.Layer) bool {
	for _, e := range l.TOC().Entries {
		if len(e.Xattrs) > 0 || path.Base(e.Name) == whiteoutOpaque {
			return true
		}
	}
	return false
}

// layerFS is what the nodes of one mount share.
type layerFS struct {
	layer *reader.Layer

	mu   sync.Mutex
	inos map[string]uint64 // by the name whose content the inode shows
	next uint64
}

// ino returns the stable inode number of the entry e names, the same for
// a hard link and its target.
func (f *layerFS) ino(name string, e *toc.Entry) uint64 {
	if e != nil && e.Type == toc.TypeHardlink {
		name = e.LinkName
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.inos[name]
	if !ok {
		f.next++
		n = f.next + 1 // 1 is the root's
		f.inos[name] = n
	}
	return n
}

// node is a name of the layer; whiteout marks a name that a ".wh." entry
// deletes, shown as overlayfs's character device 0/0.
type node struct {
	gofs.Inode
	fs       *layerFS
	name     string
	whiteout bool
}

var (
	_ gofs.NodeLookuper    = (*node)(nil)
	_ gofs.NodeReaddirer   = (*node)(nil)
	_ gofs.NodeGetattrer   = (*node)(nil)
	_ gofs.NodeOpener      = (*node)(nil)
	_ gofs.NodeReader      = (*node)(nil)
	_ gofs.NodeReadlinker  = (*node)(nil)
	_ gofs.NodeGetxattrer  = (*node)(nil)
	_ gofs.NodeListxattrer = (*node)(nil)
)

func errno(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return syscall.EINTR
	case errors.Is(err, fs.ErrInvalid):
		return syscall.EINVAL
	}
	return syscall.EIO
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if strings.HasPrefix(name, whiteoutPrefix) {
		return nil, syscall.ENOENT // whiteout entries are shown as what they mean
	}
	child := path.Join(n.name, name)
	whiteout := false
	info, err := n.fs.layer.Lstat(child)
	if errors.Is(err, fs.ErrNotExist) {
		if _, werr := n.fs.layer.Lstat(path.Join(n.name, whiteoutPrefix+name)); werr != nil {
			return nil, syscall.ENOENT
		}
		whiteout, info, err = true, nil, nil
	}
	if err != nil {
		return nil, errno(err)
	}
	c := &node{fs: n.fs, name: child, whiteout: whiteout}
	c.fill(info, &out.Attr)
	return n.NewInode(ctx, c, gofs.StableAttr{Mode: out.Attr.Mode & syscall.S_IFMT, Ino: out.Attr.Ino}), 0
}

// fill sets out from info (nil for a whiteout).
func (n *node) fill(info fs.FileInfo, out *fuse.Attr) {
	if n.whiteout {
		out.Mode = syscall.S_IFCHR
		out.Ino = n.fs.ino(whiteoutPrefix+n.name, nil)
		out.Nlink = 1
		return
	}
	e, _ := info.Sys().(*toc.Entry)
	out.Ino = n.fs.ino(n.name, e)
	if n.name == "." {
		out.Ino = 1
	}
	mode := info.Mode()
	out.Mode = uint32(mode.Perm())
	if mode&fs.ModeSetuid != 0 {
		out.Mode |= syscall.S_ISUID
	}
	if mode&fs.ModeSetgid != 0 {
		out.Mode |= syscall.S_ISGID
	}
	if mode&fs.ModeSticky != 0 {
		out.Mode |= syscall.S_ISVTX
	}
	switch {
	case mode.IsDir():
		out.Mode |= syscall.S_IFDIR
	case mode&fs.ModeSymlink != 0:
		out.Mode |= syscall.S_IFLNK
	case mode&fs.ModeNamedPipe != 0:
		out.Mode |= syscall.S_IFIFO
	case mode&fs.ModeCharDevice != 0:
		out.Mode |= syscall.S_IFCHR
	case mode&fs.ModeDevice != 0:
		out.Mode |= syscall.S_IFBLK
	default:
		out.Mode |= syscall.S_IFREG
	}
	out.Size = uint64(info.Size())
	if mode&fs.ModeSymlink != 0 && e != nil {
		out.Size = uint64(len(e.LinkName))
	}
	out.Blocks = (out.Size + 511) / 512
	out.Blksize = 4096
	out.Nlink = 1
	mtime := info.ModTime()
	out.SetTimes(nil, &mtime, nil)
	if e != nil {
		out.Owner = fuse.Owner{Uid: uint32(e.UID), Gid: uint32(e.GID)}
		if e.DevMajor != 0 || e.DevMinor != 0 {
			out.Rdev = uint32(unixMkdev(e.DevMajor, e.DevMinor))
		}
	}
}

func unixMkdev(major, minor int64) uint64 {
	return uint64(minor&0xff) | uint64(major&0xfff)<<8 | uint64(minor&^0xff)<<12 | uint64(major&^0xfff)<<32
}

func (n *node) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if n.whiteout {
		n.fill(nil, &out.Attr)
		return 0
	}
	info, err := n.fs.layer.Lstat(n.name)
	if err != nil {
		return errno(err)
	}
	n.fill(info, &out.Attr)
	return 0
}

func (n *node) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	entries, err := n.fs.layer.ReadDir(n.name)
	if err != nil {
		return nil, errno(err)
	}
	names := map[string]fuse.DirEntry{}
	for _, de := range entries {
		name := de.Name()
		if name == whiteoutOpaque {
			continue
		}
		if target, ok := strings.CutPrefix(name, whiteoutPrefix); ok {
			if _, shown := names[target]; !shown {
				names[target] = fuse.DirEntry{Name: target, Mode: syscall.S_IFCHR}
			}
			continue
		}
		var a fuse.Attr
		info, err := de.Info()
		if err != nil {
			return nil, errno(err)
		}
		(&node{fs: n.fs, name: path.Join(n.name, name)}).fill(info, &a)
		names[name] = fuse.DirEntry{Name: name, Mode: a.Mode, Ino: a.Ino}
	}
	list := make([]fuse.DirEntry, 0, len(names))
	for _, de := range names {
		list = append(list, de)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return gofs.NewListDirStream(list), 0
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	target, err := n.fs.layer.ReadLink(n.name)
	if err != nil {
		return nil, errno(err)
	}
	return []byte(target), 0
}

// handle is an open regular file.
type handle struct {
	f fs.File
	r reader.ContextReaderAt
}

func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	f, err := n.fs.layer.Open(n.name)
	if err != nil {
		return nil, 0, errno(err)
	}
	r, ok := f.(reader.ContextReaderAt)
	if !ok {
		f.Close()
		return nil, 0, syscall.EISDIR
	}
	// The layer never changes: the page cache stays valid across opens.
	return &handle{f: f, r: r}, fuse.FOPEN_KEEP_CACHE, 0
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.f.Close()
	return 0
}

func (n *node) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*handle)
	if !ok {
		return nil, syscall.EBADF
	}
	m, err := h.r.ReadAtContext(withCause(ctx, causeOnDemand), dest, off)
	if err != nil && err != io.EOF {
		return nil, errno(err)
	}
	return fuse.ReadResultData(dest[:m]), 0
}

// xattrs returns the extended attributes of the node: the entry's own,
// and overlayfs's opaque mark on a directory holding ".wh..wh..opq".
func (n *node) xattrs() (map[string]string, syscall.Errno) {
	if n.whiteout {
		return nil, 0
	}
	info, err := n.fs.layer.Lstat(n.name)
	if err != nil {
		return nil, errno(err)
	}
	x := map[string]string{}
	if e, ok := info.Sys().(*toc.Entry); ok {
		for k, v := range e.Xattrs {
			x[k] = v
		}
	}
	if info.IsDir() {
		if _, err := n.fs.layer.Lstat(path.Join(n.name, whiteoutOpaque)); err == nil {
			x[opaqueXattr] = "y"
		}
	}
	return x, 0
}

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	x, e := n.xattrs()
	if e != 0 {
		return 0, e
	}
	v, ok := x[attr]
	if !ok {
		return 0, syscall.ENODATA
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	x, e := n.xattrs()
	if e != 0 {
		return 0, e
	}
	keys := make([]string, 0, len(x))
	for k := range x {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b []byte
	for _, k := range keys {
		b = append(append(b, k...), 0)
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}
