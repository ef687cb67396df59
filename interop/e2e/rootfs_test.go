package e2e

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/lazylayer/lazylayer/internal/tartest"
)

// A rootfs is a root file system as a runtime unpacks it: what each path
// (slash-separated, relative to the root, without the root itself) is.
type rootfs map[string]*node

// node is what the tests compare of a file: its kind, permission and
// special mode bits, owner, content, link target, device numbers, xattrs
// and, for files other than directories, modification time in whole
// seconds (directories' change as whiteouts are applied under them).
type node struct {
	kind         fs.FileMode // fs.ModeDir, fs.ModeSymlink, ..., 0 for a regular file
	mode         fs.FileMode // permission, setuid, setgid and sticky bits
	uid, gid     int
	size         int64
	sum          [sha256.Size]byte
	link         string // a symlink's target
	major, minor int64
	xattrs       map[string]string
	mtime        int64
	inode        int // files that share it are hard links of each other; 0 for none
}

// keptXattr reports whether the tests compare the xattr name: the
// namespaces an image carries, not those of the store (overlay's trusted.*,
// SELinux labels).
func keptXattr(name string) bool {
	return strings.HasPrefix(name, "user.") || name == "security.capability"
}

const specialBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// apply applies the layer's entries to fs as the OCI image spec says:
// whiteouts remove what lower layers put at their path, an opaque
// whiteout everything lower layers put in its directory, and each other
// entry replaces what is at its path (a directory keeps its content).
func (r rootfs) apply(layer []tartest.Entry) {
	// Whiteouts apply to the layers below only, so before the additions.
	for _, e := range layer {
		dir, base := path.Split(clean(e.Header.Name))
		switch {
		case base == ".wh..wh..opq":
			r.remove(strings.TrimSuffix(dir, "/"), false)
		case strings.HasPrefix(base, ".wh."):
			r.remove(dir+strings.TrimPrefix(base, ".wh."), true)
		}
	}
	for _, e := range layer {
		h := e.Header
		name := clean(h.Name)
		if name == "" || strings.HasPrefix(path.Base(name), ".wh.") {
			continue
		}
		r.parents(name)
		if h.Typeflag == tar.TypeLink {
			// Runtimes apply the link's header to the file it links to,
			// which shares its inode.
			n := r[clean(h.Linkname)]
			if n.inode == 0 {
				last := 0
				for _, o := range r {
					last = max(last, o.inode)
				}
				n.inode = last + 1
			}
			n.uid, n.gid, n.mode, n.mtime = h.Uid, h.Gid, h.FileInfo().Mode()&specialBits, h.ModTime.Unix()
			r[name] = n
			continue
		}
		if old := r[name]; old != nil && (old.kind != fs.ModeDir || h.Typeflag != tar.TypeDir) {
			r.remove(name, true)
		}
		n := &node{
			kind: h.FileInfo().Mode().Type(), mode: h.FileInfo().Mode() & specialBits,
			uid: h.Uid, gid: h.Gid, size: int64(len(e.Content)), sum: sha256.Sum256(e.Content),
			major: h.Devmajor, minor: h.Devminor, xattrs: map[string]string{},
		}
		if n.kind == fs.ModeSymlink {
			n.link, n.mode = h.Linkname, 0
		}
		if n.kind != fs.ModeDir {
			n.mtime = h.ModTime.Unix()
		}
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && keptXattr(x) {
				n.xattrs[x] = v
			}
		}
		r[name] = n
	}
}

// parents adds the directories above name that are missing, as runtimes
// make them: owned by root, with mode 0755.
func (r rootfs) parents(name string) {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if r[dir] == nil {
			r[dir] = &node{kind: fs.ModeDir, mode: 0o755, sum: sha256.Sum256(nil), xattrs: map[string]string{}}
		}
	}
}

// remove removes name's descendants, and name itself if self.
func (r rootfs) remove(name string, self bool) {
	if self {
		delete(r, name)
	}
	for p := range r {
		if strings.HasPrefix(p, name+"/") {
			delete(r, p)
		}
	}
}

func clean(name string) string {
	name = path.Clean("/" + name)
	return strings.TrimPrefix(name, "/")
}

// readRootfs reads the root file system under dir.
func readRootfs(t *testing.T, dir string) rootfs {
	t.Helper()
	r := rootfs{}
	inodes := map[uint64]int{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		n := &node{kind: fi.Mode().Type(), mode: fi.Mode() & specialBits, uid: int(st.Uid), gid: int(st.Gid), xattrs: map[string]string{}}
		switch n.kind {
		case 0:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.size, n.sum, n.mtime = int64(len(b)), sha256.Sum256(b), fi.ModTime().Unix()
			if st.Nlink > 1 {
				if inodes[st.Ino] == 0 {
					inodes[st.Ino] = len(inodes) + 1
				}
				n.inode = inodes[st.Ino]
			}
		case fs.ModeSymlink:
			if n.link, err = os.Readlink(p); err != nil {
				return err
			}
			n.mode = 0
			n.sum, n.mtime = sha256.Sum256(nil), fi.ModTime().Unix()
		case fs.ModeDir:
			n.sum = sha256.Sum256(nil)
		default:
			rdev := uint64(st.Rdev)
			n.major, n.minor = int64(rdev>>8&0xfff|rdev>>32&^0xfff), int64(rdev&0xff|rdev>>12&^0xff)
			n.sum, n.mtime = sha256.Sum256(nil), fi.ModTime().Unix()
		}
		if n.kind != fs.ModeSymlink {
			if n.xattrs, err = xattrs(p); err != nil {
				return err
			}
		}
		rel, err := filepath.Rel(dir, p)
		r[filepath.ToSlash(rel)] = n
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// xattrs returns the xattrs of the file at p that keptXattr names.
func xattrs(p string) (map[string]string, error) {
	out := map[string]string{}
	buf := make([]byte, 64<<10)
	n, err := syscall.Listxattr(p, buf)
	if errors.Is(err, syscall.ENOTSUP) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: listxattr: %w", p, err)
	}
	for name := range strings.SplitSeq(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00") {
		if name == "" || !keptXattr(name) {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := syscall.Getxattr(p, name, v)
		if err != nil {
			return nil, fmt.Errorf("%s: getxattr %s: %w", p, name, err)
		}
		out[name] = string(v[:m])
	}
	return out, nil
}

// compareRootfs reports, as errors of t, how got differs from want, up
// to a screenful.
func compareRootfs(t *testing.T, what string, got, want rootfs) {
	t.Helper()
	var diffs []string
	for _, p := range slices.Sorted(maps.Keys(want)) {
		g, w := got[p], want[p]
		switch {
		case g == nil:
			diffs = append(diffs, p+": missing")
		case g.kind != w.kind:
			diffs = append(diffs, fmt.Sprintf("%s: a %v, want a %v", p, g.kind, w.kind))
		case g.mode != w.mode:
			diffs = append(diffs, fmt.Sprintf("%s: mode %v, want %v", p, g.mode, w.mode))
		case g.uid != w.uid || g.gid != w.gid:
			diffs = append(diffs, fmt.Sprintf("%s: owner %d:%d, want %d:%d", p, g.uid, g.gid, w.uid, w.gid))
		case g.size != w.size || g.sum != w.sum:
			diffs = append(diffs, fmt.Sprintf("%s: %d bytes that differ from the %d of the source", p, g.size, w.size))
		case g.link != w.link:
			diffs = append(diffs, fmt.Sprintf("%s: links to %q, want %q", p, g.link, w.link))
		case g.major != w.major || g.minor != w.minor:
			diffs = append(diffs, fmt.Sprintf("%s: device %d,%d, want %d,%d", p, g.major, g.minor, w.major, w.minor))
		case !maps.Equal(g.xattrs, w.xattrs):
			diffs = append(diffs, fmt.Sprintf("%s: xattrs %q, want %q", p, g.xattrs, w.xattrs))
		case g.mtime != w.mtime:
			diffs = append(diffs, fmt.Sprintf("%s: modified at %d, want %d", p, g.mtime, w.mtime))
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if want[p] == nil {
			diffs = append(diffs, p+": not in the source")
		}
	}
	// Hard links: the paths that share an inode, on each side.
	if g, w := linkGroups(got), linkGroups(want); !slices.Equal(g, w) {
		diffs = append(diffs, fmt.Sprintf("hard links %q, want %q", g, w))
	}
	const most = 30
	for i, d := range diffs {
		if i == most {
			t.Errorf("%s: and %d more differences", what, len(diffs)-most)
			break
		}
		t.Errorf("%s: %s", what, d)
	}
	if len(diffs) == 0 {
		t.Logf("%s: %d paths as in the source", what, len(got))
	}
}

// linkGroups returns the sets of paths of r that are hard links of each
// other, each set joined with spaces, sorted.
func linkGroups(r rootfs) []string {
	groups := map[*node][]string{}
	byInode := map[int]*node{}
	for _, p := range slices.Sorted(maps.Keys(r)) {
		n := r[p]
		if n.inode == 0 {
			continue
		}
		if byInode[n.inode] == nil {
			byInode[n.inode] = n
		}
		k := byInode[n.inode]
		groups[k] = append(groups[k], p)
	}
	var out []string
	for _, g := range groups {
		if len(g) > 1 {
			out = append(out, strings.Join(g, " "))
		}
	}
	slices.Sort(out)
	return out
}
