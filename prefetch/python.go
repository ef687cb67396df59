package prefetch

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/lazylayer/lazylayer/overlay"
	"github.com/lazylayer/lazylayer/reader"
)

// The bounds of following a CPython program's imports. The image controls
// the sources, so each is checked before more is read.
const (
	maxPythonModules     = 256       // modules found, over the whole program
	maxPythonDepth       = 8         // import chain length from the program's own code
	maxPythonSource      = 256 << 10 // bytes of one source file scanned for imports
	maxPythonSourceTotal = 16 << 20  // bytes of all source files scanned
	maxPythonImports     = 256       // import names taken from one source
)

// maxDirEntries bounds the entries of one directory a language rule lists:
// a sys.path or package directory.
const maxDirEntries = 1 << 14

// sourceReaders is how many source files a language rule reads at once:
// a lazy layer fetches them in parallel.
const sourceReaders = 8

// pythonMain returns what a CPython command line runs: the code of -c,
// the module of -m, or a script path. Options before it are skipped the
// way CPython's getopt does ("-Sc CODE", "-cCODE", "-W arg").
func pythonMain(args []string) (code, module, script string, ok bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if i+1 < len(args) {
				return "", "", args[i+1], true
			}
			return "", "", "", false
		case a == "-" || !strings.HasPrefix(a, "-"):
			if a == "-" {
				return "", "", "", false // stdin
			}
			return "", "", a, true
		case strings.HasPrefix(a, "--"):
			if a == "--check-hash-based-pycs" {
				i++
			}
			continue
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			if !strings.ContainsRune("cmWX", rune(c)) {
				continue
			}
			value := a[j+1:]
			if value == "" {
				if i++; i >= len(args) {
					return "", "", "", false
				}
				value = args[i]
			}
			switch c {
			case 'c':
				return value, "", "", true
			case 'm':
				return "", value, "", true
			}
			break // -W and -X take the rest of the word, or the next one
		}
	}
	return "", "", "", false
}

// A pyImport is one module an import statement names: "import a.b" has
// module "a.b"; "from ..a import b, c" has level 2, module "a" and names
// b and c, which may be submodules.
type pyImport struct {
	level  int
	module string
	names  []string
}

// pythonImports returns the imports of a Python source that run when it
// runs: statements outside function bodies and outside "if TYPE_CHECKING"
// (and, unless main, "if __name__ == ...") blocks, in order, at most
// maxPythonImports names. It is a line scanner, not a parser: it joins
// bracketed and backslash-continued lines, skips strings and comments, and
// follows indentation to know which block a statement is in. Imports a
// compound statement holds on its header line ("try: import x") are missed.
func pythonImports(src []byte, main bool) []pyImport {
	type block struct {
		indent int
		skip   bool
	}
	var (
		out    []pyImport
		blocks []block
		count  int
	)
	for _, line := range pythonLogicalLines(src) {
		for len(blocks) > 0 && blocks[len(blocks)-1].indent >= line.indent {
			blocks = blocks[:len(blocks)-1]
		}
		skip := len(blocks) > 0 && blocks[len(blocks)-1].skip
		text := line.text
		if strings.HasSuffix(text, ":") {
			fields := strings.Fields(text)
			def := fields[0] == "def" || fields[0] == "async" && len(fields) > 1 && fields[1] == "def"
			typing := fields[0] == "if" && (strings.HasPrefix(text, "if TYPE_CHECKING") ||
				strings.HasPrefix(text, "if typing.TYPE_CHECKING"))
			notMain := fields[0] == "if" && !main && strings.HasPrefix(text, "if __name__")
			blocks = append(blocks, block{line.indent, skip || def || typing || notMain})
			continue
		}
		if skip {
			continue
		}
		for stmt := range strings.SplitSeq(text, ";") {
			for _, imp := range parseImport(strings.TrimSpace(stmt)) {
				if count += max(1, len(imp.names)); count > maxPythonImports {
					return out
				}
				out = append(out, imp)
			}
		}
	}
	return out
}

// parseImport parses one simple statement if it is an import.
func parseImport(stmt string) []pyImport {
	fields := strings.Fields(stmt)
	if len(fields) < 2 {
		return nil
	}
	switch fields[0] {
	case "import":
		var out []pyImport
		for part := range strings.SplitSeq(strings.TrimPrefix(stmt, "import"), ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), " ") // "a.b as c"
			if validModule(name) {
				out = append(out, pyImport{module: name})
			}
		}
		return out
	case "from":
		if len(fields) < 4 || fields[2] != "import" {
			return nil
		}
		mod := fields[1]
		level := len(mod) - len(strings.TrimLeft(mod, "."))
		mod = mod[level:]
		if mod != "" && !validModule(mod) || level == 0 && mod == "" {
			return nil
		}
		imp := pyImport{level: level, module: mod}
		_, rest, _ := strings.Cut(stmt, " import ")
		rest = strings.Trim(strings.TrimSpace(rest), "()")
		for part := range strings.SplitSeq(rest, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), " ")
			if validModule(name) && !strings.Contains(name, ".") {
				imp.names = append(imp.names, name)
			}
		}
		return []pyImport{imp}
	}
	return nil
}

// validModule reports whether s is a dotted name of ASCII identifiers,
// the only module names the finder below looks up.
func validModule(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for part := range strings.SplitSeq(s, ".") {
		if part == "" || part[0] >= '0' && part[0] <= '9' {
			return false
		}
		for _, r := range part {
			if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				return false
			}
		}
	}
	return true
}

type pyLine struct {
	indent int
	text   string
}

// pythonLogicalLines splits a source into logical lines with their
// indentation, strings replaced by "" and comments removed.
func pythonLogicalLines(src []byte) []pyLine {
	var (
		out     []pyLine
		cur     strings.Builder
		indent  = -1
		depth   int
		atStart = true
	)
	flush := func() {
		if t := strings.TrimSpace(cur.String()); t != "" {
			out = append(out, pyLine{indent: max(indent, 0), text: t})
		}
		cur.Reset()
		indent, atStart = -1, true
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		if atStart {
			if c == ' ' || c == '\t' {
				continue
			}
			if c != '\n' && c != '#' && c != '\r' {
				indent = i - max(bytes.LastIndexByte(src[:i], '\n')+1, 0)
			}
			atStart = false
		}
		switch c {
		case '#':
			if j := bytes.IndexByte(src[i:], '\n'); j >= 0 {
				i += j - 1
			} else {
				i = len(src)
			}
		case '\\':
			if i+1 < len(src) && src[i+1] == '\n' {
				i++
				cur.WriteByte(' ')
			}
		case '\'', '"':
			i = skipPythonString(src, i)
			cur.WriteString(`""`)
		case '(', '[', '{':
			depth++
			cur.WriteByte(c)
		case ')', ']', '}':
			depth = max(depth-1, 0)
			cur.WriteByte(c)
		case '\n':
			if depth == 0 {
				flush()
			} else {
				cur.WriteByte(' ')
			}
		case '\r':
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

// skipPythonString returns the index of the last byte of the string
// literal that opens at src[i], or the end of src if it is unterminated.
func skipPythonString(src []byte, i int) int {
	q := src[i]
	if i+2 < len(src) && src[i+1] == q && src[i+2] == q {
		end := bytes.Index(src[i+3:], []byte{q, q, q})
		for end >= 0 && escaped(src, i+3+end) {
			next := bytes.Index(src[i+3+end+1:], []byte{q, q, q})
			if next < 0 {
				end = -1
				break
			}
			end += 1 + next
		}
		if end < 0 {
			return len(src)
		}
		return i + 3 + end + 2
	}
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			j++
		case q, '\n':
			return j
		}
	}
	return len(src)
}

// escaped reports whether src[i] follows an odd number of backslashes.
func escaped(src []byte, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && src[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// A pyModule is a module the finder located.
type pyModule struct {
	name    string
	pkgDir  string // the package's directory, if it is a package
	file    overlay.Location
	source  overlay.Location // the .py to scan for imports, if any
	depth   int
	imports []string // the modules its imports found, in order
}

// pythonFinder locates modules like CPython's path-based finder on the
// interpreter's sys.path.
type pythonFinder struct {
	ip      *imagePlanner
	path    []string // sys.path, resolved directories relative to the root
	tag     string   // "cpython-311"
	dirs    map[string]*pyDir
	modules map[string]*pyModule // by name; nil for a name not found
	order   []*pyModule
	bytes   int
	full    bool
}

// pythonProgram adds the modules a CPython interpreter started with args
// imports, and the modules those import, up to the bounds above. homes
// are the installation prefixes, version the X.Y of the interpreter.
func (ip *imagePlanner) pythonProgram(homes []string, version string, args []string) {
	code, module, script, ok := pythonMain(args)
	if !ok {
		return
	}
	f := &pythonFinder{ip: ip, dirs: map[string]*pyDir{}, modules: map[string]*pyModule{}}
	var first string // sys.path[0]: the script's directory, else the working directory
	var roots []pyImport
	switch {
	case code != "":
		first = ip.workdir
		roots = pythonImports([]byte(code[:min(len(code), maxPythonSource)]), true)
	case module != "":
		first = ip.workdir
		roots = []pyImport{{module: "runpy"}, {module: module, names: []string{"__main__"}}}
	default:
		loc, err := ip.resolve(ip.abs(script))
		if err != nil || !isRegular(loc.Info) {
			return
		}
		ip.add(loc, ReasonLanguage)
		first = "/" + path.Dir(loc.Path)
		data, err := ip.readPrefix(loc, maxPythonSource)
		if err != nil {
			return
		}
		roots = pythonImports(data, true)
	}
	f.path = f.sysPath(first, homes, version)
	if len(f.path) == 0 {
		return
	}
	main := &pyModule{}
	main.imports = f.resolveImports(roots, "", 0)
	for level := f.order; len(level) > 0 && ip.ctx.Err() == nil; {
		var next []*pyModule
		sources := f.read(level)
		for i, m := range level {
			if sources[i] == nil || m.depth >= maxPythonDepth {
				continue
			}
			before := len(f.order)
			pkg := m.name
			if m.pkgDir == "" {
				pkg = parentModule(m.name)
			}
			m.imports = f.resolveImports(pythonImports(sources[i], false), pkg, m.depth)
			next = append(next, f.order[before:]...)
		}
		level = next
	}
	// CPython runs a module's imports as it executes it, depth-first:
	// add the files in that order.
	seen := map[*pyModule]bool{}
	var visit func(names []string)
	visit = func(names []string) {
		for _, n := range names {
			m := f.modules[n]
			if m == nil || seen[m] {
				continue
			}
			seen[m] = true
			lib, ok := ip.addPath(m.file.Path, ReasonLanguage)
			if ok && strings.HasSuffix(lib.Path, ".so") && !ip.visited[lib.Path] {
				ip.visited[lib.Path] = true
				ip.elfProgram(lib)
			}
			visit(m.imports)
		}
	}
	visit(main.imports)
}

// sysPath returns the directories of sys.path that the image has:
// first, PYTHONPATH, then each home's lib/pythonX.Y, its lib-dynload and
// the site-packages and Debian dist-packages directories.
func (f *pythonFinder) sysPath(first string, homes []string, version string) []string {
	var dirs []string
	if first != "" {
		dirs = append(dirs, first)
	}
	for p := range strings.SplitSeq(f.ip.env["PYTHONPATH"], ":") {
		if p != "" {
			dirs = append(dirs, f.ip.abs(p))
		}
	}
	for _, home := range homes {
		libs := []string{path.Join("/", home, "lib", "python"+version)}
		if version == "" {
			libs, _ = fs.Glob(f.ip.ov, path.Join(escapeGlob(home), "lib/python3.*"))
		}
		for _, lib := range libs {
			lib = path.Join("/", lib)
			if f.tag == "" {
				f.tag = "cpython-" + strings.Replace(strings.TrimPrefix(path.Base(lib), "python"), ".", "", 1)
			}
			v := strings.TrimPrefix(path.Base(lib), "python")
			dirs = append(dirs, lib, lib+"/lib-dynload",
				path.Join("/", home, "local/lib/python"+v, "dist-packages"),
				lib+"/site-packages", path.Join("/", home, "lib/python3/dist-packages"))
		}
	}
	var out []string
	for _, d := range dirs {
		loc, err := f.ip.resolve(d)
		if err == nil && loc.Info.IsDir() && !slices.Contains(out, loc.Path) {
			out = append(out, loc.Path)
		}
	}
	return out
}

// resolveImports finds the modules of a source's imports; pkg is the
// package relative imports start from.
func (f *pythonFinder) resolveImports(imps []pyImport, pkg string, depth int) []string {
	var out []string
	for _, imp := range imps {
		base := imp.module
		if imp.level > 0 {
			p := pkg
			for range imp.level - 1 {
				p = parentModule(p)
			}
			if p == "" {
				continue
			}
			base = strings.TrimSuffix(p+"."+imp.module, ".")
		}
		if base == "" {
			continue
		}
		// Importing a.b.c imports a, a.b and a.b.c.
		var m *pyModule
		for i, part := range strings.Split(base, ".") {
			if i > 0 {
				m = f.find(m.name+"."+part, m.pkgDir, depth+1)
			} else {
				m = f.find(part, "", depth+1)
			}
			if m == nil {
				break
			}
			out = append(out, m.name)
		}
		if m == nil || m.pkgDir == "" {
			continue
		}
		// "from pkg import name" imports pkg.name if it is a submodule.
		for _, n := range imp.names {
			if sub := f.find(m.name+"."+n, m.pkgDir, depth+1); sub != nil {
				out = append(out, sub.name)
			}
		}
	}
	return out
}

// find locates a module: a top-level one on sys.path, a submodule in its
// package's directory. Packages come first, then extension modules, then
// sources, then sourceless byte code, as CPython's FileFinder orders them.
func (f *pythonFinder) find(name, pkgDir string, depth int) *pyModule {
	if m, ok := f.modules[name]; ok {
		return m
	}
	if len(f.order) >= maxPythonModules {
		if !f.full {
			f.full = true
			f.ip.fail(fmt.Errorf("prefetch: python: %d modules: %w", maxPythonModules, ErrLimit))
		}
		return nil
	}
	search := f.path
	if pkgDir != "" {
		search = []string{pkgDir}
	}
	base := name[strings.LastIndexByte(name, '.')+1:]
	var m *pyModule
	for _, dir := range search {
		if m = f.findIn(dir, base); m != nil {
			break
		}
	}
	f.modules[name] = m
	if m != nil {
		m.name, m.depth = name, depth
		f.order = append(f.order, m)
	}
	return m
}

func (f *pythonFinder) findIn(dir, base string) *pyModule {
	d := f.list(dir)
	if d.names[base] {
		pkg := dir + "/" + base
		if m := f.sourceModule(pkg, f.list(pkg).names, "__init__"); m != nil {
			m.pkgDir = pkg
			return m
		}
	}
	if n, ok := d.ext[base]; ok {
		return f.fileModule(dir + "/" + n)
	}
	return f.sourceModule(dir, d.names, base)
}

// sourceModule finds base.py in dir, with its byte code in __pycache__,
// or a sourceless base.pyc.
func (f *pythonFinder) sourceModule(dir string, names map[string]bool, base string) *pyModule {
	if names[base+".py"] {
		src, err := f.ip.resolve(dir + "/" + base + ".py")
		if err != nil || !isRegular(src.Info) {
			return nil
		}
		m := &pyModule{file: src, source: src}
		if pyc, err := f.ip.resolve(dir + "/__pycache__/" + base + "." + f.tag + ".pyc"); err == nil && isRegular(pyc.Info) {
			m.file = pyc // CPython reads the byte code, and only stats the source
		}
		return m
	}
	if names[base+".pyc"] {
		return f.fileModule(dir + "/" + base + ".pyc")
	}
	return nil
}

func (f *pythonFinder) fileModule(name string) *pyModule {
	loc, err := f.ip.resolve(name)
	if err != nil || !isRegular(loc.Info) {
		return nil
	}
	return &pyModule{file: loc}
}

// A pyDir is what the finder knows of a directory: its names, and the
// extension module file of each module name it has one for.
type pyDir struct {
	names map[string]bool
	ext   map[string]string
}

// list returns a directory's index, read once. Of the extension module
// files of one name, the interpreter's own tag (NAME.cpython-311-...so)
// wins over NAME.abi3.so, which wins over NAME.so.
func (f *pythonFinder) list(dir string) *pyDir {
	if d, ok := f.dirs[dir]; ok {
		return d
	}
	d := &pyDir{names: map[string]bool{}, ext: map[string]string{}}
	entries, _ := f.ip.ov.ReadDir(strings.TrimPrefix(dir, "/"))
	rank := map[string]int{}
	for _, e := range entries[:min(len(entries), maxDirEntries)] {
		n := e.Name()
		d.names[n] = true
		base, suffix, ok := strings.Cut(n, ".")
		if !ok || !strings.HasSuffix(suffix, "so") {
			continue
		}
		r := 0
		switch {
		case f.tag != "" && strings.HasPrefix(suffix, f.tag) && strings.HasSuffix(suffix, ".so"):
			r = 3
		case suffix == "abi3.so":
			r = 2
		case suffix == "so":
			r = 1
		}
		if r > rank[base] {
			rank[base], d.ext[base] = r, n
		}
	}
	f.dirs[dir] = d
	return d
}

// A bulkFetcher fetches many files' bytes in few requests: a lazy layer
// of package reader that has a cache.
type bulkFetcher interface {
	StartPrefetch(ctx context.Context, ranges []reader.FileRange, opts ...reader.PrefetchOption) (*reader.Prefetching, error)
}

// read returns the sources of the modules, within maxPythonSourceTotal;
// nil for a module without a source.
func (f *pythonFinder) read(mods []*pyModule) [][]byte {
	locs := make([]overlay.Location, len(mods))
	for i, m := range mods {
		locs[i] = m.source
	}
	return f.ip.readPrefixes(locs, maxPythonSource, &f.bytes, maxPythonSourceTotal)
}

// readPrefixes returns up to each bytes of the start of every file at
// locs (nil for a zero Location or one past the budget), counting what it
// reads against *total, which stops at limit. A lazy layer is asked for
// all of them at once, so that a level of imports costs one round trip,
// not one per file; the reads then join that fetch.
func (ip *imagePlanner) readPrefixes(locs []overlay.Location, each int, total *int, limit int) [][]byte {
	out := make([][]byte, len(locs))
	sizes := make([]int, len(locs))
	ranges := map[int][]reader.FileRange{}
	for i, loc := range locs {
		if loc.Info == nil || *total >= limit {
			continue
		}
		sizes[i] = int(min(loc.Info.Size(), int64(each), int64(limit-*total)))
		*total += sizes[i]
		ranges[loc.Layer] = append(ranges[loc.Layer], reader.FileRange{Name: loc.Path, Length: int64(sizes[i])})
	}
	for layer, rs := range ranges {
		if bf, ok := ip.ov.Layer(layer).(bulkFetcher); ok {
			if p, err := bf.StartPrefetch(ip.ctx, rs); err == nil {
				defer p.Wait()
			}
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, sourceReaders)
	for i, loc := range locs {
		if sizes[i] == 0 {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if data, err := ip.readPrefix(loc, sizes[i]); err == nil {
				out[i] = data
			}
		}()
	}
	wg.Wait()
	return out
}

// parentModule returns the package a dotted module name is in.
func parentModule(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[:i]
	}
	return ""
}
