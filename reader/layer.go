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
//
// A Layer keeps its index compact and builds a toc.Entry when one is
// asked for (Sys, ContentEntry, TOC, or a read of the file), once.
type Layer struct {
	fetcher fetcher.Fetcher
	idx     *records
	cfg     config

	root *node
	// frames lists the chunks stored in each compressed frame, by the
	// frame's offset, ordered by InnerOffset. Only frames holding more
	// than one chunk are listed.
	frames map[int64][]chunkRef

	// hint is the directory the last lookup ended in, or the parent of
	// the file it ended at, when it followed no symbolic link: a lookup
	// of a name below it starts there, so that walking a tree resolves
	// each directory from its parent rather than from the root.
	hint atomic.Pointer[node]
	// lookups, if set, counts the steps lookups take, for tests.
	lookups *atomic.Int64
	// fileSums holds the outcome of checking files' whole digests (see
	// fileSum), by *toc.Entry (see records.entry): nil, or the error
	// reads of it return.
	fileSums sync.Map
	// zeroSums holds the outcome of checking chunks of zeros against
	// their digests (see checkZeros), by zeroKey: nil, or the error.
	zeroSums sync.Map

	// ctx lives until Close; it bounds fetches that outlive one caller.
	ctx    context.Context
	cancel context.CancelFunc
	// tasks counts chunk loads and the goroutines the layer started, so
	// that Close can wait for them.
	tasks   tasks
	flights flightGroup
	// blob is the layer's format; decoders holds its idle decompressors
	// (see decompress).
	blob     blobFormat
	decoders sync.Pool
	accesses accessLog
	// foreground counts chunk loads that reads are waiting for; a
	// background fetch pauses while there are any.
	foreground atomic.Int64
	// tarSplit is a zstd:chunked layer's compressed tar-split, verified
	// against the index (see WriteTar); nil for other layers.
	tarSplit []byte
	// spans are the spans of a layer whose format verifies spans
	// (verifySpans); nil for other layers.
	spans *spanIndex
}

// node is one name in the layer's directory tree.
type node struct {
	path   string // full cleaned path, "." for the root
	parent *node  // nil for the root

	// sorted holds a directory's children in order of name, which is
	// also the order of their base names: lookups search it. (A map per
	// directory cost more than the slice, on top of it.)
	sorted []*node

	// link is a hard link's resolution, set by resolveHardlinks; nil
	// for other entries. Kept apart, it costs other nodes 8 bytes, not
	// 24: a node fits 64 bytes.
	link *hardlink

	id  int32         // the entry's record, or implied
	typ toc.EntryType // the entry's type
}

// implied is the record of a directory that the index does not list.
const implied = -1

// hardlink is where a hard link leads: the record of the entry at the end
// of its chain, or, when the chain is broken, implied and why.
type hardlink struct {
	content int32
	err     error
}

// content returns the record of the entry whose content and metadata n
// shows: its own, or the end of a hard link chain; implied for an implied
// directory, or when the chain is broken (see linkErr).
func (n *node) content() int32 {
	if n.link != nil {
		return n.link.content
	}
	return n.id
}

// linkErr reports why a hard link leads nowhere, or nil.
func (n *node) linkErr() error {
	if n.link != nil {
		return n.link.err
	}
	return nil
}

func (n *node) isDir() bool { return n.typ == toc.TypeDir }

// contentType returns the type of the entry whose content n shows.
func (l *Layer) contentType(n *node) toc.EntryType {
	if id := n.content(); id != implied {
		return l.idx.recs[id].typ
	}
	return n.typ
}

// chunkRef names one chunk of one entry, by record.
type chunkRef struct {
	id    int32
	index int32
}

// entry returns the entry of record id (see records.entry).
func (l *Layer) entry(id int32) *toc.Entry { return l.idx.entry(id) }

func (l *Layer) chunk(r chunkRef) *toc.Chunk { return &l.entry(r.id).Chunks[r.index] }

func (l *Layer) chunkDigest(r chunkRef) digest.Digest {
	return chunkDigest(l.entry(r.id), int(r.index))
}

// newLayer builds the file system view of t, whose file data lies in blob
// bytes [0, dataEnd). It rejects indexes whose chunks the blob cannot hold.
//
// The layer keeps t in compact form (see records), not t itself.
func newLayer(ctx context.Context, f fetcher.Fetcher, t *toc.TOC, dataEnd int64, cfg config) (*Layer, error) {
	return newSpanLayer(ctx, f, t, dataEnd, cfg, nil)
}

// newSpanLayer is newLayer for a format that verifies spans (verifySpans),
// whose spans are spans.
func newSpanLayer(ctx context.Context, f fetcher.Fetcher, t *toc.TOC, dataEnd int64, cfg config, spans *spanIndex) (*Layer, error) {
	// Open is on a cold start's critical path, and the tree, the compact
	// index and the checks of the chunk table only read the index: they
	// run at once. The tree and the records share one string of names.
	names := packNames(t.Entries)
	var root *node
	var idx *records
	var wg sync.WaitGroup
	var treeErr error
	wg.Go(func() {
		if root, treeErr = buildTree(t, names, cfg.names); treeErr == nil {
			resolveHardlinks(root, t)
		}
	})
	wg.Go(func() { idx = newRecords(t, names) })
	blob := formatOf(t.Format)
	err := validateChunks(t, blob, dataEnd, cfg.maxChunkSize)
	var frames map[int64][]chunkRef
	if err == nil {
		frames, err = indexFrames(t)
	}
	wg.Wait()
	if err == nil {
		err = treeErr
	}
	if err != nil {
		return nil, err
	}
	l := &Layer{fetcher: f, idx: idx, cfg: cfg, frames: frames, root: root, blob: blob, spans: spans}
	l.ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	l.flights.spawn = l.goTask
	l.startBackground()
	return l, nil
}

// TOC returns the layer's decoded index, built from the layer's compact
// form on the first call. The caller must not modify it.
func (l *Layer) TOC() *toc.TOC { return l.idx.toc() }

// format returns the layer's format.
func (l *Layer) format() toc.Format { return l.idx.meta.Format }

// Close releases the layer. Reads in progress and later reads of files
// opened from it fail with fs.ErrClosed. Close stops and waits for what
// the layer does on its own (background fetch, read-ahead, prefetch) and
// for chunk loads of reads in progress: once it returns, the layer adds
// nothing more to its cache and makes no more requests, so the cache may
// be deleted. Callbacks the layer calls (WithBackgroundFetch's done, the
// access observer, prefetch progress) must therefore not call Close.
func (l *Layer) Close() error {
	l.cancel()
	l.tasks.close()
	return nil
}

// tasks counts work under way: goroutines a Layer started, and chunk
// loads, which may add to the cache. Once closed it refuses new work.
type tasks struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// add counts a task unless close was called; after true, the caller must
// call done.
func (t *tasks) add() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	return true
}

func (t *tasks) done() { t.wg.Done() }

// close refuses new tasks and waits for those under way.
func (t *tasks) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wg.Wait()
}

// goTask runs fn on a goroutine that Close waits for. Once the layer is
// closed it runs fn on the caller's goroutine instead: every fn the layer
// starts works under the layer's context, which is then done, so fn ends
// at once.
func (l *Layer) goTask(fn func()) {
	if !l.tasks.add() {
		fn()
		return
	}
	go func() {
		defer l.tasks.done()
		fn()
	}()
}

// validateChunks checks that every regular file's chunks cover its
// content exactly, point at frames inside [0, dataEnd), and cost a read
// no more than maxChunk bytes (see WithMaxChunkSize), and that the
// digest of a file of one chunk or none agrees with its content's.
func validateChunks(t *toc.TOC, blob blobFormat, dataEnd, maxChunk int64) error {
	if blob == nil {
		return fmt.Errorf("reader: %v index: %w", t.Format, ErrUnsupportedFormat)
	}
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
			if err := checkChunk(c, blob.maxExpansion(), dataEnd, maxChunk); err != nil {
				return fmt.Errorf("reader: entry %q: chunk %d: %w", untrusted.Short(e.Name), i, err)
			}
		}
		if covered != e.Size {
			return fmt.Errorf("reader: entry %q: chunks cover %d of %d bytes: %w", untrusted.Short(e.Name), covered, e.Size, ErrCorrupt)
		}
		if err := checkFileDigest(e); err != nil {
			return fmt.Errorf("reader: entry %q: %w", untrusted.Short(e.Name), err)
		}
	}
	return nil
}

// checkChunk checks that a chunk of a layer whose frames decompress at
// most ratio times (blobFormat.maxExpansion) lies in a frame
// inside [0, dataEnd) that can hold it, and that loading it decompresses
// and holds no more than maxChunk bytes, from a frame that can hold no
// more than maxChunk bytes compressed.
func checkChunk(c *toc.Chunk, ratio, dataEnd, maxChunk int64) error {
	if c.Zeros || c.Size == 0 {
		// Reads serve zeros without building the chunk (see zeroChunk),
		// so its size costs no memory: a sparse file's hole of GiBs is
		// one such chunk in containers/storage's layers.
		return nil
	}
	if c.Size > maxChunk {
		return fmt.Errorf("%d bytes exceed the %d-byte chunk limit: %w", c.Size, maxChunk, ErrCorrupt)
	}
	frame := c.FrameEnd - c.FrameOffset
	switch {
	case c.FrameOffset < 0 || c.FrameEnd <= c.FrameOffset || c.FrameEnd > dataEnd || c.InnerOffset < 0:
		return fmt.Errorf("frame [%d,%d) inner offset %d outside data [0,%d): %w",
			c.FrameOffset, c.FrameEnd, c.InnerOffset, dataEnd, ErrCorrupt)
	case c.InnerOffset > maxChunk-c.Size:
		return fmt.Errorf("ends %d bytes into its frame, past the %d-byte chunk limit: %w",
			c.InnerOffset+c.Size, maxChunk, ErrCorrupt)
	case frame > maxCompressed(maxChunk):
		return fmt.Errorf("%d-byte frame exceeds the %d-byte chunk limit, compressed: %w", frame, maxChunk, ErrCorrupt)
	}
	if frame < math.MaxInt64/ratio/2 && c.InnerOffset+c.Size > frame*ratio+1<<10 {
		return fmt.Errorf("%d bytes at %d cannot come from a %d-byte frame: %w", c.Size, c.InnerOffset, frame, ErrCorrupt)
	}
	return nil
}

// indexFrames groups the chunks that share a compressed frame. It rejects
// chunks whose bytes overlap within a frame: an index could otherwise make
// one small frame stand for any amount of content.
func indexFrames(t *toc.TOC) (map[int64][]chunkRef, error) {
	all := make(map[int64][]chunkRef)
	for id, e := range t.Entries {
		if e.Type != toc.TypeReg {
			continue
		}
		for i := range e.Chunks {
			if c := &e.Chunks[i]; !c.Zeros && c.Size > 0 {
				all[c.FrameOffset] = append(all[c.FrameOffset], chunkRef{int32(id), int32(i)})
			}
		}
	}
	chunk := func(r chunkRef) *toc.Chunk { return &t.Entries[r.id].Chunks[r.index] }
	shared := make(map[int64][]chunkRef)
	for off, refs := range all {
		if len(refs) == 1 {
			continue
		}
		slices.SortStableFunc(refs, func(a, b chunkRef) int {
			return cmp.Compare(chunk(a).InnerOffset, chunk(b).InnerOffset)
		})
		for k := 1; k < len(refs); k++ {
			prev, c := chunk(refs[k-1]), chunk(refs[k])
			if c.InnerOffset < prev.InnerOffset+prev.Size || c.FrameEnd != prev.FrameEnd {
				return nil, fmt.Errorf("reader: entries %q and %q: chunks overlap, or disagree on where the frame at %d ends: %w",
					untrusted.Short(t.Entries[refs[k-1].id].Name), untrusted.Short(t.Entries[refs[k].id].Name), off, ErrCorrupt)
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
	return &node{path: p, id: implied, typ: toc.TypeDir}
}

// impliedEntry is the entry an implied directory at p shows.
func impliedEntry(p string) *toc.Entry {
	return &toc.Entry{Name: p, Type: toc.TypeDir, Mode: 0o755}
}

// child returns the child of directory n named elem, or nil.
func (n *node) child(elem string) *node {
	prefix := len(n.path) + 1 // "dir/"
	if n.parent == nil {
		prefix = 0 // the root, ".", names its children "a", not "./a"
	}
	i, found := slices.BinarySearchFunc(n.sorted, elem, func(c *node, elem string) int {
		return strings.Compare(c.path[prefix:], elem)
	})
	if !found {
		return nil
	}
	return n.sorted[i]
}

// buildTree replays the entries like a tar extraction would; names holds
// their names (see packNames), which the tree's paths share. It holds
// the names to limits, as the index decoders do, since the index may come
// from elsewhere: an error matches ErrCorrupt and toc.ErrInvalidTOC or
// toc.ErrTOCTooLarge, as the decoders' would.
func buildTree(t *toc.TOC, names []string, limits nameLimits) (*node, error) {
	root := impliedDir(".")
	// The children of each directory by base name, while the tree grows.
	children := map[*node]map[string]*node{root: {}}
	var nameBytes int64
	implied := 0
	// lastDir is the directory the previous entry went into. A tar lists
	// a directory's entries together, so an entry's walk starts at the
	// deepest directory on lastDir's path that holds it, not at the root.
	// The previous entry cannot have replaced a directory on that path,
	// which leads to it.
	lastDir := root
	for id, e := range t.Entries {
		if isLandmark(e) || e.Type == 0 {
			continue
		}
		nameBytes += int64(len(e.Name) + len(e.LinkName))
		p, err := limits.check(e, nameBytes)
		if err != nil {
			return nil, fmt.Errorf("reader: entry %q: %w: %w", untrusted.Short(e.Name), ErrCorrupt, err)
		}
		if p == e.Name {
			p = names[id]
		}
		if p == "." {
			if e.Type == toc.TypeDir {
				root.id = int32(id)
			}
			continue
		}
		parent, rest := lastDir, p
		for parent != root && !(len(p) > len(parent.path) && p[len(parent.path)] == '/' && strings.HasPrefix(p, parent.path)) {
			parent = parent.parent
		}
		if parent != root {
			rest = p[len(parent.path)+1:]
		}
		for {
			elem, more, found := strings.Cut(rest, "/")
			if !found {
				break
			}
			child := children[parent][elem]
			if child == nil || !child.isDir() {
				if implied++; implied > limits.implied {
					return nil, fmt.Errorf("reader: names imply more than %d directories the index does not list: %w: %w",
						limits.implied, ErrCorrupt, toc.ErrTOCTooLarge)
				}
				child = impliedDir(p[:len(p)-len(more)-1])
				child.parent = parent
				children[parent][elem] = child
				children[child] = make(map[string]*node)
			}
			parent, rest = child, more
		}
		lastDir = parent
		if old := children[parent][rest]; old != nil && old.isDir() && e.Type == toc.TypeDir {
			old.id = int32(id)
			continue
		}
		n := &node{path: p, parent: parent, id: int32(id), typ: e.Type}
		if e.Type == toc.TypeDir {
			children[n] = make(map[string]*node)
		}
		children[parent][rest] = n
	}
	// Sort every directory's children, without recursion: a hostile index
	// can nest names deeper than a goroutine stack should go.
	stack := []*node{root}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		d.sorted = make([]*node, 0, len(children[d]))
		for _, c := range children[d] {
			d.sorted = append(d.sorted, c)
			c.parent = d
			if c.isDir() {
				stack = append(stack, c)
			}
		}
		slices.SortFunc(d.sorted, func(a, b *node) int { return strings.Compare(a.path, b.path) })
	}
	return root, nil
}

// check holds entry e, whose name and link target bring the names so far
// to nameBytes bytes, to the limits, and returns its cleaned name.
func (limits nameLimits) check(e *toc.Entry, nameBytes int64) (string, error) {
	if len(e.Name) > limits.length || len(e.LinkName) > limits.length {
		return "", fmt.Errorf("name or link target over %d bytes: %w", limits.length, toc.ErrInvalidTOC)
	}
	if nameBytes > limits.bytes {
		return "", fmt.Errorf("names and link targets exceed %d bytes in all: %w", limits.bytes, toc.ErrTOCTooLarge)
	}
	p := cleanName(e.Name)
	if pathDepth(p) > limits.depth || pathDepth(e.LinkName) > limits.depth {
		return "", fmt.Errorf("name or link target of over %d elements: %w", limits.depth, toc.ErrInvalidTOC)
	}
	return p, nil
}

// pathDepth returns the number of elements of the name or link target p
// (at least that of p once cleaned), 0 for the root.
func pathDepth(p string) int {
	if p == "" || p == "." {
		return 0
	}
	return strings.Count(p, "/") + 1
}

// resolveHardlinks points every hard link of the tree of t at the entry at
// the end of its chain, or records why it cannot. Each link is visited
// once.
func resolveHardlinks(root *node, t *toc.TOC) {
	var links []*node
	stack := []*node{root}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range d.sorted {
			switch c.typ {
			case toc.TypeDir:
				stack = append(stack, c)
			case toc.TypeHardlink:
				links = append(links, c)
			}
		}
	}
	inProgress := make(map[*node]bool)
	for _, start := range links {
		var chain []*node
		var content int32
		var err error
		for n := start; ; {
			if n.typ != toc.TypeHardlink {
				content = n.id
				break
			}
			if n.link != nil {
				content, err = n.link.content, n.link.err
				break
			}
			if inProgress[n] {
				err = fmt.Errorf("hard link %q is part of a cycle: %w", untrusted.Short(start.path), ErrLinkLoop)
				break
			}
			inProgress[n] = true
			chain = append(chain, n)
			linkName := t.Entries[n.id].LinkName
			target := lookupNoFollow(root, cleanName(linkName))
			switch {
			case target == nil:
				err = fmt.Errorf("hard link %q: target %q does not exist: %w", untrusted.Short(n.path), untrusted.Short(linkName), ErrCorrupt)
			case target.isDir():
				err = fmt.Errorf("hard link %q: target %q is a directory: %w", untrusted.Short(n.path), untrusted.Short(linkName), ErrCorrupt)
			}
			if err != nil {
				break
			}
			n = target
		}
		if err != nil {
			content = implied
		}
		for _, n := range chain {
			n.link = &hardlink{content: content, err: err}
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
		if n = n.child(elem); n == nil {
			return nil
		}
	}
	return n
}

// lookup finds the node named by the valid path name, following symbolic
// links in every element but the last, and in the last too if followLast.
func (l *Layer) lookup(name string, followLast bool) (*node, error) {
	n, steps, err := l.resolve(name, followLast)
	if l.lookups != nil {
		l.lookups.Add(int64(steps))
	}
	if err == nil && n.path == name {
		// Resolved without a symbolic link: n's directory is where a
		// lookup of a name below it can start.
		d := n
		if !n.isDir() {
			d = n.parent
		}
		if l.hint.Load() != d {
			l.hint.Store(d)
		}
	}
	return n, err
}

// start returns the deepest directory on the path of the valid name that
// the last lookup (see Layer.hint) resolved, and the rest of name below
// it ("" for the directory itself), with how many steps up the tree it
// took to find it.
func (l *Layer) start(name string) (dir *node, rest string, steps int) {
	h := l.hint.Load()
	if h == nil || h == l.root {
		return l.root, name, 0
	}
	// i is the length of the longest common prefix of name and the
	// hint's path that ends at an element boundary of both.
	p, i := h.path, 0
	for i < len(p) && i < len(name) && p[i] == name[i] {
		i++
	}
	if (i < len(p) && p[i] != '/') || (i < len(name) && name[i] != '/') {
		if i = strings.LastIndexByte(p[:i], '/'); i < 0 {
			return l.root, name, 0
		}
	}
	// The hint's ancestors are the directories named by the prefixes of
	// its path.
	for len(h.path) > i {
		h = h.parent
		steps++
	}
	if i == len(name) {
		return h, "", steps
	}
	return h, name[i+1:], steps
}

// resolve is lookup, which it counts the steps of: directories looked
// into and climbed out of.
func (l *Layer) resolve(name string, followLast bool) (n *node, steps int, err error) {
	if name == "." {
		return l.root, 0, nil
	}
	hops := 0
	dir, rest, steps := l.start(name)
	if rest == "" {
		return dir, steps, nil
	}
	for {
		elem, more, found := strings.Cut(rest, "/")
		steps++
		if n = dir.child(elem); n == nil {
			return nil, steps, errNotExist
		}
		if n.typ == toc.TypeSymlink && (found || followLast) {
			if hops++; hops > maxSymlinks {
				return nil, steps, fmt.Errorf("following %q: %w", untrusted.Short(n.path), ErrLinkLoop)
			}
			// Resolve against the layer root: path.Clean drops ".." at
			// "/", so no target leaves the layer.
			target := l.idx.linkName(n.id)
			if !path.IsAbs(target) {
				target = path.Join("/", path.Dir(n.path), target)
			}
			if found {
				target = path.Join(target, more)
			}
			dir, rest = l.root, cleanName(target)
			if rest == "." {
				return l.root, steps, nil
			}
			continue
		}
		if !found {
			return n, steps, nil
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
