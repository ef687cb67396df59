package reader

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"math"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// maxExpansion bounds how many bytes one compressed byte of a frame can
// decompress to: deflate reaches 1032 (258-byte matches from a couple of
// bits), zstd 32768 (an RLE block turns 4 bytes into 128 KiB). No honest
// chunk is larger than its frame times this, so the bound rejects indexes
// that would make the reader allocate memory the blob cannot fill.
func maxExpansion(f toc.Format) int64 {
	if f == toc.FormatZstdChunked {
		return 128 << 10 / 4
	}
	return 1032
}

// maxSymlinks is how many symbolic links one lookup follows, as in Linux.
const maxSymlinks = 40

// A Layer is a seekable layer blob opened lazily: its index is in memory,
// file contents are fetched, verified and decompressed chunk by chunk when
// read. A Layer is an fs.FS over the layer's files, with fs.StatFS,
// fs.ReadDirFS, fs.ReadFileFS and fs.ReadLinkFS. It is safe for concurrent
// use.
//
// Names follow tar extraction semantics: when the index lists a name more
// than once, the last entry wins (a directory listed again keeps its
// children); parent directories that the index does not list exist
// anyway, with mode 0755, and replace whatever non-directory held their
// name; a hard link shows its target's content and metadata. Whiteout files (".wh.*", ".wh..wh..opq") are ordinary entries:
// applying them to lower layers is the caller's business. The eStargz
// landmark files are hidden.
//
// Symbolic links are resolved inside the layer, as if the layer were the
// root file system: absolute targets start at the layer root and ".."
// never climbs above it. Open and Stat follow links, Lstat and ReadLink do
// not.
//
// Regular files opened from a Layer implement io.Reader, io.ReaderAt,
// io.Seeker and io.WriterTo. fs.FileInfo.Sys of every name returns the
// *toc.Entry the index lists under that name (for a hard link, the link
// entry itself), or a synthesised directory entry for implied directories.
type Layer struct {
	fetcher fetcher.Fetcher
	toc     *toc.TOC
	cfg     config

	root *node
	// frames lists the chunks stored in each compressed frame, by the
	// frame's offset, ordered by InnerOffset. Only frames holding more
	// than one chunk are listed.
	frames map[int64][]chunkRef

	// ctx lives until Close; it bounds fetches that outlive one caller.
	ctx     context.Context
	cancel  context.CancelFunc
	flights flightGroup
	gzips   sync.Pool
	zstds   sync.Pool
	// inflaters holds idle inflaters (see inflateSpans): their tables
	// cost more to allocate than a small frame costs to inflate.
	inflaters sync.Pool
	accesses  accessLog
	// foreground counts chunk loads that reads are waiting for; a
	// background fetch pauses while there are any.
	foreground atomic.Int64
	// tarSplit is a zstd:chunked layer's compressed tar-split, verified
	// against the index (see WriteTar); nil for other layers.
	tarSplit []byte
}

// node is one name in the layer's directory tree.
type node struct {
	path  string     // full cleaned path, "." for the root
	entry *toc.Entry // as listed, or synthesised for an implied directory

	// children of a directory, by base name; sorted is built once the
	// tree is complete.
	children map[string]*node
	sorted   []*node

	// content is the entry whose content and metadata this name shows:
	// entry itself, or the end of a hard link chain. linkErr is set
	// instead when the chain is broken.
	content *toc.Entry
	linkErr error
}

func (n *node) isDir() bool { return n.entry.Type == toc.TypeDir }

// chunkRef names one chunk of one entry.
type chunkRef struct {
	entry *toc.Entry
	index int
}

func (r chunkRef) chunk() *toc.Chunk { return &r.entry.Chunks[r.index] }

// newLayer builds the file system view of t, whose file data lies in blob
// bytes [0, dataEnd). It rejects indexes whose chunks the blob cannot hold.
func newLayer(ctx context.Context, f fetcher.Fetcher, t *toc.TOC, dataEnd int64, cfg config) (*Layer, error) {
	// Open is on a cold start's critical path, and the tree and the
	// checks of the chunk table only read the index: they run at once.
	var root *node
	built := make(chan struct{})
	go func() {
		defer close(built)
		root = buildTree(t)
		resolveHardlinks(root)
	}()
	err := validateChunks(t, dataEnd)
	var frames map[int64][]chunkRef
	if err == nil {
		frames, err = indexFrames(t)
	}
	<-built
	if err != nil {
		return nil, err
	}
	l := &Layer{fetcher: f, toc: t, cfg: cfg, frames: frames, root: root}
	l.ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	l.startBackground()
	return l, nil
}

// TOC returns the layer's decoded index. The caller must not modify it.
func (l *Layer) TOC() *toc.TOC { return l.toc }

// Close releases the layer. Reads in progress and later reads of files
// opened from it fail with fs.ErrClosed.
func (l *Layer) Close() error {
	l.cancel()
	return nil
}

// validateChunks checks that every regular file's chunks cover its
// content exactly and point at frames inside [0, dataEnd).
func validateChunks(t *toc.TOC, dataEnd int64) error {
	for _, e := range t.Entries {
		if e.Type != toc.TypeReg {
			continue
		}
		if e.Size < 0 {
			return fmt.Errorf("reader: entry %q: negative size %d: %w", untrusted.Short(e.Name), e.Size, ErrCorrupt)
		}
		var covered int64
		for i := range e.Chunks {
			c := &e.Chunks[i]
			if c.Offset != covered || c.Size < 0 || c.Size > e.Size-covered {
				return fmt.Errorf("reader: entry %q: chunk %d [%d+%d) does not continue the file's %d bytes at %d: %w",
					untrusted.Short(e.Name), i, c.Offset, c.Size, e.Size, covered, ErrCorrupt)
			}
			covered += c.Size
			if c.Zeros || c.Size == 0 {
				continue
			}
			if c.FrameOffset < 0 || c.FrameEnd <= c.FrameOffset || c.FrameEnd > dataEnd || c.InnerOffset < 0 {
				return fmt.Errorf("reader: entry %q: chunk %d: frame [%d,%d) inner offset %d outside data [0,%d): %w",
					untrusted.Short(e.Name), i, c.FrameOffset, c.FrameEnd, c.InnerOffset, dataEnd, ErrCorrupt)
			}
			if frame, ratio := c.FrameEnd-c.FrameOffset, maxExpansion(t.Format); frame < math.MaxInt64/ratio/2 {
				limit := frame*ratio + 1<<10
				if c.InnerOffset > limit || c.Size > limit-c.InnerOffset {
					return fmt.Errorf("reader: entry %q: chunk %d: %d bytes at %d cannot come from a %d-byte frame: %w",
						untrusted.Short(e.Name), i, c.Size, c.InnerOffset, frame, ErrCorrupt)
				}
			}
		}
		if covered != e.Size {
			return fmt.Errorf("reader: entry %q: chunks cover %d of %d bytes: %w", untrusted.Short(e.Name), covered, e.Size, ErrCorrupt)
		}
	}
	return nil
}

// indexFrames groups the chunks that share a compressed frame. It rejects
// chunks whose bytes overlap within a frame: an index could otherwise make
// one small frame stand for any amount of content.
func indexFrames(t *toc.TOC) (map[int64][]chunkRef, error) {
	all := make(map[int64][]chunkRef)
	for _, e := range t.Entries {
		if e.Type != toc.TypeReg {
			continue
		}
		for i := range e.Chunks {
			if c := &e.Chunks[i]; !c.Zeros && c.Size > 0 {
				all[c.FrameOffset] = append(all[c.FrameOffset], chunkRef{e, i})
			}
		}
	}
	shared := make(map[int64][]chunkRef)
	for off, refs := range all {
		if len(refs) == 1 {
			continue
		}
		slices.SortStableFunc(refs, func(a, b chunkRef) int {
			return cmp.Compare(a.chunk().InnerOffset, b.chunk().InnerOffset)
		})
		for k := 1; k < len(refs); k++ {
			prev, c := refs[k-1].chunk(), refs[k].chunk()
			if c.InnerOffset < prev.InnerOffset+prev.Size || c.FrameEnd != prev.FrameEnd {
				return nil, fmt.Errorf("reader: entries %q and %q: chunks overlap, or disagree on where the frame at %d ends: %w",
					untrusted.Short(refs[k-1].entry.Name), untrusted.Short(refs[k].entry.Name), off, ErrCorrupt)
			}
		}
		shared[off] = refs
	}
	return shared, nil
}

// cleanName turns an index name into a path relative to the layer root,
// "." for the root itself; nothing it returns contains ".." elements.
func cleanName(name string) string {
	if fs.ValidPath(name) {
		return name // the common case, without an allocation
	}
	p := path.Clean("/" + name)[1:]
	if p == "" {
		return "."
	}
	return p
}

func isLandmark(e *toc.Entry) bool {
	return e.Type == toc.TypeReg && (e.Name == toc.PrefetchLandmark || e.Name == toc.NoPrefetchLandmark)
}

func impliedDir(p string) *node {
	return &node{
		path:     p,
		entry:    &toc.Entry{Name: p, Type: toc.TypeDir, Mode: 0o755},
		children: make(map[string]*node),
	}
}

// buildTree replays the entries like a tar extraction would.
func buildTree(t *toc.TOC) *node {
	root := impliedDir(".")
	for _, e := range t.Entries {
		if isLandmark(e) || e.Type == 0 {
			continue
		}
		p := cleanName(e.Name)
		if p == "." {
			if e.Type == toc.TypeDir {
				root.entry = e
			}
			continue
		}
		parent := root
		rest := p
		for {
			elem, more, found := strings.Cut(rest, "/")
			if !found {
				break
			}
			child := parent.children[elem]
			if child == nil || !child.isDir() {
				child = impliedDir(p[:len(p)-len(more)-1])
				parent.children[elem] = child
			}
			parent, rest = child, more
		}
		if old := parent.children[rest]; old != nil && old.isDir() && e.Type == toc.TypeDir {
			old.entry = e
			continue
		}
		n := &node{path: p, entry: e}
		if e.Type == toc.TypeDir {
			n.children = make(map[string]*node)
		}
		parent.children[rest] = n
	}
	// Sort every directory's children, without recursion: a hostile index
	// can nest names deeper than a goroutine stack should go.
	stack := []*node{root}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		d.sorted = make([]*node, 0, len(d.children))
		for _, c := range d.children {
			d.sorted = append(d.sorted, c)
			c.content = c.entry
			if c.isDir() {
				stack = append(stack, c)
			}
		}
		slices.SortFunc(d.sorted, func(a, b *node) int { return strings.Compare(a.path, b.path) })
	}
	root.content = root.entry
	return root
}

// resolveHardlinks points every hard link at the entry at the end of its
// chain, or records why it cannot. Each link is visited once.
func resolveHardlinks(root *node) {
	var links []*node
	stack := []*node{root}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range d.sorted {
			switch c.entry.Type {
			case toc.TypeDir:
				stack = append(stack, c)
			case toc.TypeHardlink:
				c.content = nil
				links = append(links, c)
			}
		}
	}
	inProgress := make(map[*node]bool)
	for _, start := range links {
		var chain []*node
		var content *toc.Entry
		var err error
		for n := start; ; {
			if n.entry.Type != toc.TypeHardlink {
				content = n.entry
				break
			}
			if n.content != nil || n.linkErr != nil {
				content, err = n.content, n.linkErr
				break
			}
			if inProgress[n] {
				err = fmt.Errorf("hard link %q is part of a cycle: %w", untrusted.Short(start.path), ErrLinkLoop)
				break
			}
			inProgress[n] = true
			chain = append(chain, n)
			target := lookupNoFollow(root, cleanName(n.entry.LinkName))
			switch {
			case target == nil:
				err = fmt.Errorf("hard link %q: target %q does not exist: %w", untrusted.Short(n.path), untrusted.Short(n.entry.LinkName), ErrCorrupt)
			case target.isDir():
				err = fmt.Errorf("hard link %q: target %q is a directory: %w", untrusted.Short(n.path), untrusted.Short(n.entry.LinkName), ErrCorrupt)
			}
			if err != nil {
				break
			}
			n = target
		}
		for _, n := range chain {
			n.content, n.linkErr = content, err
			if err != nil {
				n.content = nil
			}
		}
	}
}

// lookupNoFollow finds p literally, following no symbolic links: hard link
// targets in tar archives are plain names.
func lookupNoFollow(root *node, p string) *node {
	if p == "." {
		return root
	}
	n := root
	for elem := range strings.SplitSeq(p, "/") {
		if n.children == nil {
			return nil
		}
		if n = n.children[elem]; n == nil {
			return nil
		}
	}
	return n
}

// lookup finds the node named by the valid path name, following symbolic
// links in every element but the last, and in the last too if followLast.
func (l *Layer) lookup(name string, followLast bool) (*node, error) {
	if name == "." {
		return l.root, nil
	}
	hops := 0
	dir, rest := l.root, name
	for {
		elem, more, found := strings.Cut(rest, "/")
		var n *node
		if dir.children != nil {
			n = dir.children[elem]
		}
		if n == nil {
			return nil, errNotExist
		}
		if n.entry.Type == toc.TypeSymlink && (found || followLast) {
			if hops++; hops > maxSymlinks {
				return nil, fmt.Errorf("following %q: %w", untrusted.Short(n.path), ErrLinkLoop)
			}
			// Resolve against the layer root: path.Clean drops ".." at
			// "/", so no target leaves the layer.
			target := n.entry.LinkName
			if !path.IsAbs(target) {
				target = path.Join("/", path.Dir(n.path), target)
			}
			if found {
				target = path.Join(target, more)
			}
			dir, rest = l.root, cleanName(target)
			if rest == "." {
				return l.root, nil
			}
			continue
		}
		if !found {
			return n, nil
		}
		dir, rest = n, more
	}
}

// chunkDigest returns the digest that e.Chunks[i] must match: its own, or
// the file's when the file is that one chunk.
func chunkDigest(e *toc.Entry, i int) digest.Digest {
	if d := e.Chunks[i].Digest; d != "" {
		return d
	}
	if len(e.Chunks) == 1 {
		return e.Digest
	}
	return ""
}
