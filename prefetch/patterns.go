package prefetch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/lazylayer/lazylayer/overlay"
)

// AnnotationPatterns is the descriptor annotation key under which a
// layer (or image manifest) carries the patterns of a plan, in the form
// Patterns.String writes. The key follows the OCI reverse-domain
// convention for the project's namespace, lazylayer.github.io.
const AnnotationPatterns = "io.github.lazylayer.prefetch.patterns"

// DefaultPatternBudget is the size, in bytes, that Plan.Patterns fits its
// serialised form into unless told otherwise: small beside the 4 MiB
// manifest limit registries enforce, large enough for a few hundred paths.
const DefaultPatternBudget = 8 << 10

// maxPatternsInput bounds the serialised form ParsePatterns accepts.
const maxPatternsInput = 1 << 20

// ErrBadPattern is wrapped by the errors of ParsePatterns.
var ErrBadPattern = errors.New("prefetch: bad pattern")

// Patterns is an ordered set of path patterns: the portable form of a
// plan, which a layer's producer can write into a descriptor annotation
// and a consumer can match against any layer or image later. A pattern is
// a cleaned, relative, slash-separated path, as in a TOC, in one of three
// forms:
//
//	usr/bin/python3.12     exactly this file
//	usr/lib/python3.12/*   the files directly in this directory
//	usr/share/zoneinfo/**  everything below this directory ("**" alone: all)
//
// The serialised form is the patterns in order, separated by newlines.
// Order is priority: Rank reports the position of the first pattern that
// matches. The zero Patterns matches nothing.
type Patterns struct {
	list  []string
	exact map[string]int // path -> rank
	dirs  map[string]int // "d/*" -> rank, by d
	trees map[string]int // "d/**" -> rank, by d ("" for "**")
}

type patternKind uint8

const (
	patternExact patternKind = iota
	patternDir               // d/*
	patternTree              // d/**
)

// splitPattern returns a pattern's kind and the path it is anchored at.
func splitPattern(p string) (patternKind, string) {
	switch {
	case p == "**":
		return patternTree, ""
	case strings.HasSuffix(p, "/**"):
		return patternTree, strings.TrimSuffix(p, "/**")
	case strings.HasSuffix(p, "/*"):
		return patternDir, strings.TrimSuffix(p, "/*")
	}
	return patternExact, p
}

func joinPattern(kind patternKind, anchor string) string {
	switch {
	case kind == patternTree && anchor == "":
		return "**"
	case kind == patternTree:
		return anchor + "/**"
	case kind == patternDir:
		return anchor + "/*"
	}
	return anchor
}

// validAnchor reports whether p is a normalised relative path in which no
// element is a wildcard and no byte is a control character.
func validAnchor(p string) bool {
	if p == "" || p == "." || strings.HasPrefix(p, "/") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f {
			return false
		}
	}
	for e := range strings.SplitSeq(p, "/") {
		if e == "" || e == "." || e == ".." || e == "*" || e == "**" {
			return false
		}
	}
	return true
}

// newPatterns returns the set of an ordered list of valid patterns,
// without duplicates and without patterns a broader one of the list
// covers: the broader one takes the place of the first it covers.
func newPatterns(list []string) Patterns {
	all := indexPatterns(list)
	var kept []string
	seen := make(map[string]bool)
	for _, p := range list {
		if by, ok := all.coveredBy(splitPattern(p)); ok {
			p = by
		}
		if !seen[p] {
			seen[p] = true
			kept = append(kept, p)
		}
	}
	return indexPatterns(kept)
}

// indexPatterns indexes a list of valid patterns by kind and anchor; the
// rank of a pattern is its first position.
func indexPatterns(list []string) Patterns {
	ps := Patterns{list: list, exact: map[string]int{}, dirs: map[string]int{}, trees: map[string]int{}}
	for i, p := range list {
		kind, anchor := splitPattern(p)
		m := ps.exact
		switch kind {
		case patternTree:
			m = ps.trees
		case patternDir:
			m = ps.dirs
		}
		if _, ok := m[anchor]; !ok {
			m[anchor] = i
		}
	}
	return ps
}

// coveredBy returns the broadest other pattern of ps that covers the
// pattern (kind, anchor), if any. Being the broadest, it is itself not
// covered by anything.
func (ps Patterns) coveredBy(kind patternKind, anchor string) (string, bool) {
	if kind == patternTree && anchor == "" {
		return "", false
	}
	if _, ok := ps.trees[""]; ok {
		return "**", true
	}
	// Trees at the anchor's ancestors, broadest first; a "d/*" is also
	// covered by "d/**".
	limit := anchor
	if kind != patternDir {
		limit = parentDir(anchor)
	}
	for i := 0; i <= len(limit); i++ {
		if i == len(limit) || limit[i] == '/' {
			if _, ok := ps.trees[limit[:i]]; ok && i > 0 {
				return joinPattern(patternTree, limit[:i]), true
			}
		}
	}
	if kind == patternExact {
		if _, ok := ps.dirs[parentDir(anchor)]; ok {
			return joinPattern(patternDir, parentDir(anchor)), true
		}
	}
	return "", false
}

// parentDir is path.Dir for relative paths, with "" for the root.
func parentDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// ParsePatterns parses the serialised form: patterns separated by
// newlines; empty lines are ignored. Input over 1 MiB, a path that is not
// normalised, or a wildcard other than a final "*" or "**" element is an
// error wrapping ErrBadPattern.
func ParsePatterns(s string) (Patterns, error) {
	if len(s) > maxPatternsInput {
		return Patterns{}, fmt.Errorf("%w: %d bytes of patterns", ErrBadPattern, len(s))
	}
	var list []string
	for n, line := range strings.Split(s, "\n") {
		if line == "" {
			continue
		}
		kind, anchor := splitPattern(line)
		if !(kind == patternTree && anchor == "") && !validAnchor(anchor) {
			return Patterns{}, fmt.Errorf("%w: line %d: %q", ErrBadPattern, n+1, line)
		}
		list = append(list, line)
	}
	return newPatterns(list), nil
}

// String returns the serialised form.
func (ps Patterns) String() string { return strings.Join(ps.list, "\n") }

// List returns the patterns in order.
func (ps Patterns) List() []string { return slices.Clone(ps.list) }

// Len returns the number of patterns.
func (ps Patterns) Len() int { return len(ps.list) }

// Match reports whether a pattern matches name, a path as a TOC or plan
// names it (a leading "/" or "./" is ignored).
func (ps Patterns) Match(name string) bool {
	_, ok := ps.Rank(name)
	return ok
}

// Rank returns the position of the first pattern that matches name.
func (ps Patterns) Rank(name string) (int, bool) {
	name, ok := normalise(name)
	if !ok || len(ps.list) == 0 {
		return 0, false
	}
	best, found := 0, false
	consider := func(r int, ok bool) {
		if ok && (!found || r < best) {
			best, found = r, true
		}
	}
	r, ok := ps.exact[name]
	consider(r, ok)
	r, ok = ps.dirs[parentDir(name)]
	consider(r, ok)
	for a := name; ; a = parentDir(a) {
		r, ok = ps.trees[parentDir(a)]
		consider(r, ok)
		if a == "" || parentDir(a) == "" {
			break
		}
	}
	return best, found
}

// Patterns exports the plan's paths as patterns, in plan order. With
// layer >= 0 only the paths that layer provides are exported. The
// serialised form fits in budget bytes (DefaultPatternBudget if budget
// <= 0): paths are kept exact while they fit; over budget, the files of
// the directory that saves the most bytes are replaced by "dir/*", then
// those of the next (directories with two files or more), and if that is
// not enough, patterns are generalised to "dir/**" one directory level at
// a time, from the deepest, down to "**" (2 bytes, the least any budget
// gets). Every path of the plan still matches. The result depends only on
// the plan, so the same plan always exports the same string. Paths that cannot be written as a pattern (a control character,
// an element "*" or "**") are left out.
func (p *Plan) Patterns(layer, budget int) Patterns {
	if budget <= 0 {
		budget = DefaultPatternBudget
	}
	var list []string
	for _, name := range p.Paths(layer) {
		if validAnchor(name) {
			list = append(list, name)
		}
	}
	return fitPatterns(list, budget)
}

func patternsSize(list []string) int {
	if len(list) == 0 {
		return 0
	}
	n := len(list) - 1
	for _, p := range list {
		n += len(p)
	}
	return n
}

// fitPatterns generalises list until its serialised form fits budget.
func fitPatterns(list []string, budget int) Patterns {
	ps := newPatterns(list)
	if patternsSize(ps.list) <= budget {
		return ps
	}
	// First, "dir/*" for the directories whose exact files cost the most.
	type group struct {
		dir   string
		saved int
	}
	cost, files := map[string]int{}, map[string]int{}
	for _, name := range ps.list {
		if kind, _ := splitPattern(name); kind == patternExact {
			cost[parentDir(name)] += len(name) + 1
			files[parentDir(name)]++
		}
	}
	var groups []group
	for d, c := range cost {
		if d != "" && files[d] > 1 { // one file alone is not worth a whole directory
			groups = append(groups, group{d, c - len(d) - len("/*") - 1})
		}
	}
	slices.SortFunc(groups, func(a, b group) int {
		return cmp.Or(cmp.Compare(b.saved, a.saved), strings.Compare(a.dir, b.dir))
	})
	size := patternsSize(ps.list)
	collapse := map[string]bool{}
	for _, g := range groups {
		if size <= budget || g.saved <= 0 {
			break
		}
		collapse[g.dir] = true
		size -= g.saved
	}
	list = list[:0]
	for _, name := range ps.list {
		if kind, _ := splitPattern(name); kind == patternExact && collapse[parentDir(name)] {
			name = joinPattern(patternDir, parentDir(name))
		}
		list = append(list, name)
	}
	ps = newPatterns(list)
	// Then cut the tree one level at a time.
	for depth := maxDepth(ps.list) - 1; patternsSize(ps.list) > budget && depth >= 0; depth-- {
		list = list[:0]
		for _, p := range ps.list {
			_, anchor := splitPattern(p)
			elems := strings.Split(anchor, "/")
			if anchor != "" && len(elems) > depth {
				p = joinPattern(patternTree, strings.Join(elems[:depth], "/"))
			}
			list = append(list, p)
		}
		ps = newPatterns(list)
	}
	return ps
}

func maxDepth(list []string) int {
	d := 0
	for _, p := range list {
		_, anchor := splitPattern(p)
		d = max(d, strings.Count(anchor, "/")+1)
	}
	return d
}

// FromPatterns plans the files of img that ps matches, in pattern order;
// within a "dir/*" or "dir/**" pattern, in lexical order. Symbolic links
// matched by a pattern are followed to the file they name. Priorities
// are the pattern's rank.
func FromPatterns(ctx context.Context, img *overlay.FS, ps Patterns, opts ...Option) (*Plan, error) {
	o := buildOptions(opts)
	var p Plan
	full := errors.New("full")
	res := img.NewResolver()
	add := func(name string, rank int) error {
		loc, err := res.Resolve(name)
		if err != nil || !isRegular(loc.Info) {
			return nil
		}
		if p.Len() >= o.maxItems {
			return full
		}
		p.Add(Item{Layer: loc.Layer, Path: loc.Path, Priority: rank, Reason: ReasonPattern})
		return nil
	}
	for rank, pattern := range ps.list {
		if err := ctx.Err(); err != nil {
			return &p, err
		}
		kind, anchor := splitPattern(pattern)
		root := cmp.Or(anchor, ".")
		var err error
		switch kind {
		case patternExact:
			err = add(anchor, rank)
		case patternDir:
			entries, _ := fs.ReadDir(img, root)
			for _, e := range entries {
				if err = add(path.Join(root, e.Name()), rank); err != nil {
					break
				}
			}
		case patternTree:
			err = fs.WalkDir(img, root, func(name string, d fs.DirEntry, err error) error {
				if err != nil {
					return nil // an unreadable or missing directory adds nothing
				}
				if d.IsDir() {
					return ctx.Err()
				}
				return add(name, rank)
			})
		}
		if err == full {
			return &p, fmt.Errorf("prefetch: patterns: %d items: %w", o.maxItems, ErrLimit)
		}
		if err != nil {
			return &p, err
		}
	}
	return &p, nil
}
