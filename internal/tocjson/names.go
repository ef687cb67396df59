package tocjson

import (
	"fmt"
	"strings"

	"github.com/lazylayer/lazylayer/toc"
)

// nameBudget holds an index's entry names to the limits of a decodeConfig,
// entry by entry in index order, before the decoder allocates anything for
// them: a name costs a reader memory and work for every element (a
// directory to look up, or to create if the index does not list it).
type nameBudget struct {
	maxLength, maxDepth, maxImplied int
	maxBytes                        int64

	bytes   int64 // of the names and link targets so far
	implied int   // directories implied so far (see WithMaxImpliedDirs)
	// known is a directory the entries so far imply exists, "" for the
	// root: the previous entry's name if it is a directory, else its
	// parent.
	known string
}

func newNameBudget(cfg toc.Limits) nameBudget {
	return nameBudget{maxLength: cfg.MaxNameLength, maxDepth: cfg.MaxPathDepth, maxImplied: cfg.MaxImpliedDirs, maxBytes: cfg.MaxNameBytes}
}

// spend checks the lengths of an entry's name and link target as the index
// spells them, and counts them against the total.
func (b *nameBudget) spend(name, link string) error {
	if len(name) > b.maxLength {
		return fmt.Errorf("name of %d bytes exceeds the %d-byte limit: %w", len(name), b.maxLength, toc.ErrInvalidTOC)
	}
	if len(link) > b.maxLength {
		return fmt.Errorf("link target of %d bytes exceeds the %d-byte limit: %w", len(link), b.maxLength, toc.ErrInvalidTOC)
	}
	b.bytes += int64(len(name) + len(link))
	if b.bytes > b.maxBytes {
		return fmt.Errorf("names and link targets exceed %d bytes in all: %w", b.maxBytes, toc.ErrTOCTooLarge)
	}
	return nil
}

// place checks the depth of an entry's cleaned name and of its link
// target, and counts the directories the name implies.
func (b *nameBudget) place(name string, isDir bool, link string) error {
	if d := pathDepth(name); d > b.maxDepth {
		return fmt.Errorf("name of %d elements exceeds the %d-element limit: %w", d, b.maxDepth, toc.ErrInvalidTOC)
	}
	if d := pathDepth(link); d > b.maxDepth {
		return fmt.Errorf("link target of %d elements exceeds the %d-element limit: %w", d, b.maxDepth, toc.ErrInvalidTOC)
	}
	if name == "." {
		b.known = ""
		return nil
	}
	parent := ""
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		parent = name[:i]
	}
	b.implied += newDirs(parent, b.known)
	if b.implied > b.maxImplied {
		return fmt.Errorf("names imply more than %d directories the index does not list: %w", b.maxImplied, toc.ErrTOCTooLarge)
	}
	b.known = parent
	if isDir {
		b.known = name
	}
	return nil
}

// pathDepth returns the number of slash-separated elements of p: 0 for ""
// and the root ".".
func pathDepth(p string) int {
	if p == "" || p == "." {
		return 0
	}
	return strings.Count(p, "/") + 1
}

// newDirs returns how many of dir and its ancestors are neither known nor
// ancestors of known. Both are clean paths, "" for the root.
func newDirs(dir, known string) int {
	if dir == "" {
		return 0
	}
	// i is the length of the longest common prefix that ends at an
	// element boundary of both: the deepest directory they share.
	i := 0
	for i < len(dir) && i < len(known) && dir[i] == known[i] {
		i++
	}
	if (i < len(dir) && dir[i] != '/') || (i < len(known) && known[i] != '/') {
		i = strings.LastIndexByte(dir[:i], '/')
	}
	switch {
	case i == len(dir):
		return 0
	case i < 0:
		return strings.Count(dir, "/") + 1
	default:
		return strings.Count(dir[i+1:], "/") + 1
	}
}
