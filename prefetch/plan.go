package prefetch

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/lazylayer/lazylayer/toc"
)

// Reason says why a plan holds an item. Planners in this package use the
// constants below; callers may define their own.
type Reason string

const (
	ReasonLandmark    Reason = "landmark"     // before an eStargz .prefetch.landmark
	ReasonTrace       Reason = "trace"        // named by an access trace
	ReasonPattern     Reason = "pattern"      // matched an exported pattern set
	ReasonEntrypoint  Reason = "entrypoint"   // the program the image config runs
	ReasonInterpreter Reason = "interpreter"  // a #! interpreter of a script
	ReasonELFInterp   Reason = "elf-interp"   // an ELF PT_INTERP (the dynamic loader)
	ReasonELFNeeded   Reason = "elf-needed"   // a DT_NEEDED shared library
	ReasonRuntime     Reason = "runtime"      // read by libc or the system at start
	ReasonLanguage    Reason = "language-lib" // a language runtime's startup bundle
)

// Item is one file, or one byte range of a file, that a plan asks for.
type Item struct {
	// Layer is the index of the layer that provides Path once the image's
	// layers are overlaid (0 is the lowest layer).
	Layer int
	// Path is the cleaned, slash-separated path relative to the image root
	// ("usr/bin/sh"). The planners of this package resolve every symbolic
	// link first: a plan names file data.
	Path string
	// Offset and Length select a byte range of the file. Length 0 means
	// the whole file (Offset is then 0).
	Offset, Length int64
	// Priority orders the plan: lower values are fetched first. Items of
	// equal priority keep the order they were added in.
	Priority int
	Reason   Reason
}

// WholeFile reports whether the item asks for the whole file.
func (it Item) WholeFile() bool { return it.Length == 0 }

// covers reports whether it asks for every byte that other asks for.
func (it Item) covers(other Item) bool {
	if it.Layer != other.Layer || it.Path != other.Path {
		return false
	}
	if it.WholeFile() {
		return true
	}
	return !other.WholeFile() && it.Offset <= other.Offset &&
		other.Offset+other.Length <= it.Offset+it.Length
}

func (it Item) String() string {
	if it.WholeFile() {
		return fmt.Sprintf("%d %s:%s (%s)", it.Priority, layerName(it.Layer), it.Path, it.Reason)
	}
	return fmt.Sprintf("%d %s:%s[%d+%d] (%s)", it.Priority, layerName(it.Layer), it.Path,
		it.Offset, it.Length, it.Reason)
}

func layerName(i int) string { return fmt.Sprintf("L%d", i) }

type itemKey struct {
	layer          int
	path           string
	offset, length int64
}

// Plan is an ordered, de-duplicated set of items. The zero Plan is empty
// and ready to use. A Plan is not safe for concurrent mutation.
type Plan struct {
	items []Item
	index map[itemKey]int // position in items
}

// Add adds an item. Path is normalised (cleaned, made relative); an item
// whose path normalises to the root or holds a NUL byte, or with a
// negative layer or range, is ignored and Add reports false. Adding an item that the plan already holds keeps
// one copy with the lower priority and that priority's reason.
func (p *Plan) Add(it Item) bool {
	name, ok := normalise(it.Path)
	if !ok || it.Offset < 0 || it.Length < 0 || it.Layer < 0 {
		return false
	}
	it.Path = name
	if it.Length == 0 {
		it.Offset = 0
	}
	k := itemKey{it.Layer, it.Path, it.Offset, it.Length}
	if i, ok := p.index[k]; ok {
		if it.Priority < p.items[i].Priority {
			p.items[i].Priority, p.items[i].Reason = it.Priority, it.Reason
		}
		return true
	}
	if p.index == nil {
		p.index = make(map[itemKey]int)
	}
	p.index[k] = len(p.items)
	p.items = append(p.items, it)
	return true
}

// Len returns the number of items added and not merged away.
func (p *Plan) Len() int { return len(p.items) }

// Items returns the plan in fetch order: by Priority, then by the order
// items were added. A range that an earlier-or-equal-priority item of the
// same file already covers is left out, so a whole-file item hides
// later ranges of that file.
func (p *Plan) Items() []Item {
	ordered := slices.Clone(p.items)
	slices.SortStableFunc(ordered, func(a, b Item) int { return cmp.Compare(a.Priority, b.Priority) })
	type file struct {
		layer int
		path  string
	}
	seen := make(map[file][]Item)
	out := ordered[:0]
	for _, it := range ordered {
		f := file{it.Layer, it.Path}
		prev := seen[f]
		if len(prev) > 0 && prev[0].WholeFile() ||
			len(prev) <= maxCoverChecks && slices.ContainsFunc(prev, func(p Item) bool { return p.covers(it) }) {
			continue
		}
		if it.WholeFile() {
			prev = prev[:0] // only the whole-file item matters from now on
		}
		seen[f] = append(prev, it)
		out = append(out, it)
	}
	return out
}

// maxCoverChecks bounds the earlier ranges of one file a range is checked
// against, so Items stays linear for a file read in many pieces; a range
// kept beyond it only costs a duplicate that Chunks removes.
const maxCoverChecks = 64

// Merge returns a plan holding the items of all plans. Items are ordered
// by priority; among equal priorities, the items of an earlier plan come
// first. When several plans hold the same item, the lowest priority wins.
func Merge(plans ...*Plan) *Plan {
	var merged Plan
	for _, p := range plans {
		if p == nil {
			continue
		}
		for _, it := range p.items {
			merged.Add(it)
		}
	}
	return &merged
}

// Paths returns the distinct paths of the plan in fetch order. With
// layer >= 0 it returns only the paths that layer provides.
func (p *Plan) Paths(layer int) []string {
	var out []string
	seen := make(map[string]bool)
	for _, it := range p.Items() {
		if (layer >= 0 && it.Layer != layer) || seen[it.Path] {
			continue
		}
		seen[it.Path] = true
		out = append(out, it.Path)
	}
	return out
}

// EntryLookup returns the TOC entry of a regular file in the given layer,
// with its hardlinks already followed. Plan.Chunks calls it once per file.
type EntryLookup func(layer int, name string) (*toc.Entry, error)

// ChunkRef is one chunk of one layer that a plan needs.
type ChunkRef struct {
	Layer    int
	Path     string
	Chunk    toc.Chunk
	Priority int
}

// Chunks maps the plan onto the chunks of the layers' TOCs, in fetch
// order, each chunk once. A chunk is needed when it overlaps an item's
// byte range. Chunks that are stored nowhere (toc.Chunk.Zeros) are left
// out. Chunks stops at the first error lookup returns.
func (p *Plan) Chunks(lookup EntryLookup) ([]ChunkRef, error) {
	type chunkKey struct {
		layer  int
		path   string
		offset int64
	}
	seen := make(map[chunkKey]bool)
	var out []ChunkRef
	for _, it := range p.Items() {
		e, err := lookup(it.Layer, it.Path)
		if err != nil {
			return nil, fmt.Errorf("prefetch: chunks of layer %d %q: %w", it.Layer, it.Path, err)
		}
		if e == nil {
			continue
		}
		end := it.Offset + it.Length
		for _, c := range e.Chunks {
			if c.Zeros || c.Size <= 0 {
				continue
			}
			if !it.WholeFile() && (c.Offset+c.Size <= it.Offset || c.Offset >= end) {
				continue
			}
			k := chunkKey{it.Layer, it.Path, c.Offset}
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, ChunkRef{Layer: it.Layer, Path: it.Path, Chunk: c, Priority: it.Priority})
		}
	}
	return out, nil
}

// FromLandmark returns the plan an eStargz producer recorded in a layer:
// the regular files placed before the .prefetch.landmark entry, in blob
// order. It is empty when the TOC has no landmark or an explicit
// .no.prefetch.landmark.
func FromLandmark(layer int, t *toc.TOC) *Plan {
	var p Plan
	if t == nil || t.NoPrefetch {
		return &p
	}
	var files []*toc.Entry
	for _, e := range t.Entries {
		if e.Name == landmarkName {
			for i, f := range files {
				p.Add(Item{Layer: layer, Path: f.Name, Priority: i, Reason: ReasonLandmark})
			}
			return &p
		}
		if e.Type == toc.TypeReg && e.Name != noLandmarkName {
			files = append(files, e)
		}
	}
	return &p
}

const (
	landmarkName   = ".prefetch.landmark"
	noLandmarkName = ".no.prefetch.landmark"
)

// normalise turns a slash-separated path, absolute or relative, into the
// cleaned relative form the plan uses. It rejects the root and paths
// holding NUL, which no file system can name.
func normalise(name string) (string, bool) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", false
	}
	clean := strings.TrimPrefix(path.Clean("/"+name), "/")
	return clean, clean != ""
}
