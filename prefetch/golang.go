package prefetch

import (
	"cmp"
	"fmt"
	"go/build/constraint"
	"go/scanner"
	"go/token"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/overlay"
)

// The bounds of following the packages a go command builds. The image
// controls the sources, so each is checked before more is read.
const (
	maxGoPackages    = 1024     // package directories found, over the whole build
	maxGoDepth       = 32       // import chain length from the named packages
	maxGoHeader      = 64 << 10 // bytes of one Go source scanned for its imports
	maxGoHeaderTotal = 64 << 20 // bytes of all Go sources scanned
	maxGoImports     = 256      // imports taken from one source
	maxGoArgs        = 256      // package arguments taken from the command line
	maxGoWalk        = 4096     // directories a "..." pattern visits
	maxGoModules     = 1024     // requirements taken from a go.mod
)

// goCommand says what a go subcommand does with its packages: compile
// them and their dependencies (with the compiler and assembler), link a
// program always or when a package is a main package, run vet, include
// the packages' tests.
type goCommand struct {
	compile, link, linkMain, vet, tests bool
}

// goCommands are the subcommands the rule follows. generate reads only
// the named packages' files; the others build.
var goCommands = map[string]goCommand{
	"build":    {compile: true, linkMain: true},
	"install":  {compile: true, linkMain: true},
	"run":      {compile: true, link: true},
	"test":     {compile: true, link: true, vet: true, tests: true},
	"vet":      {compile: true, vet: true, tests: true},
	"generate": {},
}

// goValueFlags are the go command's build and test flags that take a
// value, which may be the next argument.
var goValueFlags = map[string]bool{
	"C": true, "o": true, "p": true, "tags": true, "gcflags": true, "ldflags": true,
	"asmflags": true, "buildmode": true, "compiler": true, "gccgoflags": true,
	"installsuffix": true, "mod": true, "modfile": true, "overlay": true, "pgo": true,
	"pkgdir": true, "toolexec": true, "covermode": true, "coverpkg": true, "exec": true,
	"vettool": true, "vet": true, "run": true, "skip": true, "bench": true,
	"benchtime": true, "count": true, "cpu": true, "parallel": true, "timeout": true,
	"list": true, "fuzz": true, "fuzztime": true, "fuzzminimizetime": true,
	"coverprofile": true, "cpuprofile": true, "memprofile": true, "memprofilerate": true,
	"blockprofile": true, "blockprofilerate": true, "mutexprofile": true,
	"mutexprofilefraction": true, "outputdir": true, "trace": true, "shuffle": true,
}

// goInvocation is what a go command line asks for.
type goInvocation struct {
	cmd      goCommand
	chdir    string   // -C
	tags     []string // -tags, and race, msan, asan
	modFlag  string   // -mod
	packages []string // package arguments: files, directories, patterns, import paths
}

// parseGoCommand parses "go SUBCOMMAND [flags] [packages]" (args without
// the program), and the flags of GOFLAGS. It reports false for a
// subcommand the rule does not follow.
func parseGoCommand(args []string, goflags string) (goInvocation, bool) {
	var inv goInvocation
	if len(args) == 0 {
		return inv, false
	}
	// "go -C dir build" is allowed too: -C comes first.
	for len(args) >= 2 && (args[0] == "-C" || args[0] == "--C") {
		inv.chdir, args = args[1], args[2:]
	}
	if len(args) > 0 && strings.HasPrefix(args[0], "-C=") {
		inv.chdir, args = strings.TrimPrefix(args[0], "-C="), args[1:]
	}
	if len(args) == 0 {
		return inv, false
	}
	name := args[0]
	cmd, ok := goCommands[name]
	if !ok {
		return inv, false
	}
	inv.cmd = cmd
	for f := range strings.FieldsSeq(goflags) {
		inv.flag(strings.TrimLeft(f, "-"), "")
	}
	args = args[1:]
	for i := 0; i < len(args) && len(inv.packages) < maxGoArgs; i++ {
		a := args[i]
		if a == "-args" || a == "--args" || a == "--" {
			break
		}
		// go run takes one package, or .go files, and passes what
		// follows to the program.
		if name == "run" && len(inv.packages) > 0 &&
			(!strings.HasSuffix(inv.packages[0], ".go") || !strings.HasSuffix(a, ".go")) {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			inv.packages = append(inv.packages, a)
			continue
		}
		flag, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasValue && goValueFlags[flag] && i+1 < len(args) {
			i++
			value = args[i]
		}
		inv.flag(flag, value)
	}
	return inv, true
}

// flag records a flag that changes what a build reads.
func (inv *goInvocation) flag(name, value string) {
	if n, v, ok := strings.Cut(name, "="); ok {
		name, value = n, v
	}
	switch name {
	case "C":
		inv.chdir = value
	case "tags":
		inv.tags = append(inv.tags, strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' })...)
	case "race", "msan", "asan":
		if value == "" || value == "true" {
			inv.tags = append(inv.tags, name)
		}
	case "mod":
		inv.modFlag = value
	}
}

// Known GOOS and GOARCH values: a file name ending in one of them is
// built for that target only.
var (
	knownOS = words("aix android darwin dragonfly freebsd hurd illumos ios js linux " +
		"nacl netbsd openbsd plan9 solaris wasip1 windows zos")
	knownArch = words("386 amd64 amd64p32 arm armbe arm64 arm64be loong64 mips mipsle " +
		"mips64 mips64le mips64p32 mips64p32le ppc ppc64 ppc64le riscv riscv64 s390 " +
		"s390x sparc sparc64 wasm")
	unixOS = words("aix android darwin dragonfly freebsd hurd illumos ios linux netbsd openbsd solaris")
	// goSourceExts are the extensions of the files the go command opens
	// in a package directory, whatever their build constraints.
	goSourceExts = words(".go .c .cc .cxx .cpp .m .h .hh .hpp .hxx .f .F .for .f90 " +
		".s .S .sx .swig .swigcxx .syso")
)

func words(s string) map[string]bool {
	m := map[string]bool{}
	for w := range strings.FieldsSeq(s) {
		m[w] = true
	}
	return m
}

// A goTarget is the build context: the target system and the build tags
// that hold for it.
type goTarget struct {
	goos, goarch string
	tags         map[string]bool
}

func newGoTarget(goos, goarch string, cgo bool, extra []string) goTarget {
	t := goTarget{goos: goos, goarch: goarch, tags: map[string]bool{goos: true, goarch: true, "gc": true}}
	switch goos {
	case "android":
		t.tags["linux"] = true
	case "illumos":
		t.tags["solaris"] = true
	case "ios":
		t.tags["darwin"] = true
	}
	if unixOS[goos] {
		t.tags["unix"] = true
	}
	if cgo {
		t.tags["cgo"] = true
	}
	for _, tag := range extra {
		t.tags[tag] = true
	}
	return t
}

// matchName reports whether the go command compiles a Go file of this
// name for the target, by its _GOOS, _GOARCH and _test suffixes.
func (t goTarget) matchName(name string, tests bool) bool {
	if !strings.HasSuffix(name, ".go") || strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".") {
		return false
	}
	stem := strings.TrimSuffix(name, ".go")
	if strings.HasSuffix(stem, "_test") {
		if !tests {
			return false
		}
		stem = strings.TrimSuffix(stem, "_test")
	}
	// Only the words after the first underscore count: linux.go is built
	// everywhere.
	i := strings.IndexByte(stem, '_')
	if i < 0 {
		return true
	}
	l := strings.Split(stem[i:], "_")
	n := len(l)
	if n >= 2 && knownOS[l[n-2]] && knownArch[l[n-1]] {
		return t.tags[l[n-2]] && t.tags[l[n-1]]
	}
	if knownOS[l[n-1]] || knownArch[l[n-1]] {
		return t.tags[l[n-1]]
	}
	return true
}

// matchConstraint reports whether a //go:build line holds for the
// target. Release tags (go1.N) hold. The defaults of GOEXPERIMENT are
// compiled into the go command, so a goexperiment tag may go either
// way: the line holds if it does with them all set or all unset. A line
// that does not parse holds, so its file is followed.
func (t goTarget) matchConstraint(line string) bool {
	if line == "" {
		return true
	}
	expr, err := constraint.Parse(line)
	if err != nil {
		return true
	}
	eval := func(experiments bool) bool {
		return expr.Eval(func(tag string) bool {
			switch {
			case t.tags[tag]:
				return true
			case tag == "go1" || strings.HasPrefix(tag, "go1."):
				return true
			case strings.HasPrefix(tag, "goexperiment."):
				return experiments
			}
			return false
		})
	}
	return eval(true) || eval(false)
}

// A goHeader is what the go command reads of a Go source before it
// compiles it: the build constraint, the package clause and the imports.
type goHeader struct {
	build   string // the //go:build line, if any
	pkg     string
	imports []string
}

// scanGoHeader reads the header of a Go source: a //go:build line
// before the package clause, the package name, and the paths of the
// import declarations that follow it, at most maxGoImports. It stops at
// the first other declaration or at anything it does not expect. Only
// paths that are valid fs paths (no "." or ".." elements, no leading
// slash) are kept, so a hostile path cannot leave the directory it is
// resolved in.
func scanGoHeader(src []byte) goHeader {
	var h goHeader
	var s scanner.Scanner
	fset := token.NewFileSet()
	s.Init(fset.AddFile("", -1, len(src)), src, nil, scanner.ScanComments)
	next := func() (token.Token, string) {
		for {
			_, tok, lit := s.Scan()
			if tok != token.COMMENT {
				return tok, lit
			}
			if h.pkg == "" && h.build == "" && strings.HasPrefix(lit, "//go:build") {
				h.build = lit
			}
		}
	}
	if tok, _ := next(); tok != token.PACKAGE {
		return goHeader{}
	}
	tok, lit := next()
	if tok != token.IDENT {
		return goHeader{}
	}
	h.pkg = lit
	if tok, _ = next(); tok != token.SEMICOLON {
		return h
	}
	// spec parses "[name] PATH" and reports whether it found one.
	spec := func(tok token.Token, lit string) bool {
		if tok == token.IDENT || tok == token.PERIOD {
			tok, lit = next()
		}
		if tok != token.STRING {
			return false
		}
		p, err := strconv.Unquote(lit)
		if err == nil && validImportPath(p) && len(h.imports) < maxGoImports {
			h.imports = append(h.imports, p)
		}
		return true
	}
	for {
		if tok, _ := next(); tok != token.IMPORT {
			return h
		}
		tok, lit := next()
		if tok != token.LPAREN {
			if !spec(tok, lit) {
				return h
			}
			if tok, _ := next(); tok != token.SEMICOLON {
				return h
			}
			continue
		}
		for {
			tok, lit := next()
			if tok == token.RPAREN {
				break
			}
			if !spec(tok, lit) {
				return h
			}
			if tok, _ = next(); tok == token.RPAREN {
				break
			}
			if tok != token.SEMICOLON {
				return h
			}
		}
		if tok, _ := next(); tok != token.SEMICOLON && tok != token.EOF {
			return h
		}
	}
}

// validImportPath reports whether p is an import path the rule resolves:
// a slash-separated path of at most 256 bytes without "." or ".."
// elements, spaces or control characters.
func validImportPath(p string) bool {
	if len(p) > 256 || !fs.ValidPath(p) || p == "." || !utf8.ValidString(p) {
		return false
	}
	for _, r := range p {
		if r <= ' ' || r == '\\' || r == 0x7f {
			return false
		}
	}
	return true
}

// A goPackage is a package directory of the build.
type goPackage struct {
	path  string // the import path, if it was imported
	dir   string // the resolved directory, relative to the root
	depth int
	files []overlay.Location // what the go command opens: every source file of the directory
	scan  []overlay.Location // the Go files compiled for the target: where imports come from
	names []string           // package clauses of the scanned files
	cgo   bool               // a file imports "C"
	inStd bool               // under GOROOT/src: std's vendor directory applies
}

// A goModule is the main module: go.mod's module path, requirements and
// local replacements.
type goModule struct {
	path, dir string // the module path; its resolved directory
	vendor    bool   // resolve imports in dir/vendor
	require   map[string]string
	replace   map[string]string // module path to a resolved directory
}

// goBuild follows the packages one go command builds.
type goBuild struct {
	ip       *imagePlanner
	inv      goInvocation
	goroot   string // resolved, relative to the root
	workdir  string // absolute: WorkingDir, then -C
	target   goTarget
	hostTool string // pkg/tool/GOOS_GOARCH of the go command's own system
	cgo      bool
	mod      *goModule
	modcache string // absolute GOMODCACHE

	pkgs  map[string]*goPackage // by resolved directory; nil for none
	order []*goPackage
	bytes int
	full  bool
	deep  bool
}

// goProgram adds what the go command started with args reads to build
// the packages it names: the sources of each package and of every
// package it imports, in the order the command loads them, then the
// tools that compile, assemble and link them. homes are the directories
// above the program's bin directory, the first GOROOT candidates.
func (ip *imagePlanner) goProgram(homes []string, _ string, args []string) {
	inv, ok := parseGoCommand(args, ip.env["GOFLAGS"])
	if !ok {
		return
	}
	g := &goBuild{ip: ip, inv: inv, pkgs: map[string]*goPackage{}}
	if !g.setup(homes) {
		return
	}
	roots := g.roots()
	if !inv.cmd.compile {
		g.plan(false) // generate reads the named packages' files only
		return
	}
	g.follow(roots)
	// A program links the runtime and what the go command adds to the
	// packages of a test or a cgo program.
	link := inv.cmd.link || inv.cmd.linkMain && slices.ContainsFunc(roots, func(p *goPackage) bool {
		return slices.Contains(p.names, "main")
	})
	if link {
		deps := []string{"runtime"}
		if g.cgo {
			deps = append(deps, "runtime/cgo")
		}
		if inv.cmd.tests { // the generated test main's imports
			deps = append(deps, "os", "testing", "testing/internal/testdeps")
		}
		var more []*goPackage
		for _, d := range deps {
			before := len(g.order)
			g.importStd(d, 0)
			more = append(more, g.order[before:]...)
		}
		g.follow(more)
	}
	g.plan(link)
}

// setup finds GOROOT (Env, else the installation the program is in),
// the target system and the main module. It reports false if the image
// has no Go installation there.
func (g *goBuild) setup(homes []string) bool {
	ip := g.ip
	candidates := homes
	if r := ip.env["GOROOT"]; r != "" {
		candidates = []string{r}
	}
	for _, home := range candidates {
		loc, err := ip.resolve(path.Join("/", home, "src/runtime"))
		if err == nil && loc.Info.IsDir() {
			g.goroot = path.Join("/", loc.Path, "../..")
			break
		}
	}
	if g.goroot == "" {
		return false
	}
	// GOROOT/go.env holds defaults under the environment.
	env := map[string]string{}
	if data, ok := ip.readSmallFile(path.Join(g.goroot, "go.env")); ok {
		for line := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
				env[k] = v
			}
		}
	}
	for k, v := range ip.env {
		env[k] = v
	}
	// The go command's own system is the one its tools are built for.
	tools, _ := ip.ov.ReadDir(strings.TrimPrefix(path.Join(g.goroot, "pkg/tool"), "/"))
	hostOS, hostArch := "", ""
	for _, e := range tools[:min(len(tools), maxDirEntries)] {
		if o, a, ok := strings.Cut(e.Name(), "_"); ok && knownOS[o] && knownArch[a] {
			g.hostTool, hostOS, hostArch = path.Join(g.goroot, "pkg/tool", e.Name()), o, a
			break
		}
	}
	goos, goarch := cmp.Or(env["GOOS"], hostOS), cmp.Or(env["GOARCH"], hostArch)
	if goos == "" || goarch == "" {
		return false
	}
	// cgo is on by default for a native build with a C compiler.
	switch env["CGO_ENABLED"] {
	case "1":
		g.cgo = true
	case "":
		if goos == hostOS && goarch == hostArch {
			cc := "gcc"
			if f := strings.Fields(env["CC"]); len(f) > 0 {
				cc = f[0]
			}
			_, _, err := ip.lookPath(cc)
			g.cgo = err == nil
		}
	}
	g.target = newGoTarget(goos, goarch, g.cgo, g.inv.tags)
	g.workdir = ip.workdir
	if g.inv.chdir != "" {
		g.workdir = ip.abs(g.inv.chdir)
	}
	g.workdir = path.Join("/", g.workdir)
	g.modcache = env["GOMODCACHE"]
	if g.modcache == "" {
		gopath := strings.Split(env["GOPATH"], ":")[0]
		if gopath == "" && env["HOME"] != "" {
			gopath = path.Join(env["HOME"], "go")
		}
		if gopath != "" {
			g.modcache = path.Join(gopath, "pkg/mod")
		}
	}
	if env["GO111MODULE"] != "off" {
		start := g.workdir
		if len(g.inv.packages) > 0 && strings.HasSuffix(g.inv.packages[0], ".go") {
			start = path.Dir(g.abs(g.inv.packages[0]))
		}
		g.mod = g.findModule(start)
	}
	return true
}

// abs makes a command-line path absolute against the go command's
// working directory.
func (g *goBuild) abs(name string) string {
	if strings.HasPrefix(name, "/") {
		return path.Clean(name)
	}
	return path.Join(g.workdir, name)
}

// roots returns the packages the command line names: .go files (one
// package), directories, "..." patterns of directories or import paths,
// import paths, or, with none, the working directory's package.
func (g *goBuild) roots() []*goPackage {
	args := g.inv.packages
	if len(args) == 0 {
		args = []string{"."}
	}
	var out []*goPackage
	var files []string
	for _, a := range args {
		local := a == "." || a == ".." || strings.HasPrefix(a, "./") ||
			strings.HasPrefix(a, "../") || strings.HasPrefix(a, "/")
		switch {
		case strings.HasSuffix(a, ".go"):
			files = append(files, g.abs(a))
		case strings.HasSuffix(a, "/...") || a == "...":
			prefix := strings.TrimSuffix(strings.TrimSuffix(a, "..."), "/")
			var dir string
			switch {
			case local:
				dir = g.abs(prefix)
			case prefix == "":
				continue
			default:
				dir = g.importDir(nil, prefix)
			}
			if dir != "" {
				out = append(out, g.walk(dir)...)
			}
		case local:
			out = append(out, g.pkg(g.abs(a), "", 0, g.inv.cmd.tests))
		case validImportPath(a) && a != "std" && a != "cmd" && a != "all":
			if dir := g.importDir(nil, a); dir != "" {
				out = append(out, g.pkg(dir, a, 0, g.inv.cmd.tests))
			}
		}
	}
	if len(files) > 0 {
		out = append(out, g.filesPkg(files))
	}
	seen := map[*goPackage]bool{nil: true}
	return slices.DeleteFunc(out, func(p *goPackage) bool {
		dup := seen[p]
		seen[p] = true
		return dup
	})
}

// filesPkg returns the package of the .go files a command line names:
// the go command reads only those of their directory.
func (g *goBuild) filesPkg(files []string) *goPackage {
	p := &goPackage{dir: strings.TrimPrefix(path.Dir(files[0]), "/")}
	for _, f := range files {
		loc, err := g.ip.resolve(f)
		if err != nil || !isRegular(loc.Info) {
			g.ip.fail(fmt.Errorf("prefetch: go: source %q: %w", untrusted.Short(f), ErrNotFound))
			continue
		}
		p.files = append(p.files, loc)
		p.scan = append(p.scan, loc)
	}
	if len(p.files) == 0 || !g.count() {
		return nil
	}
	g.order = append(g.order, p)
	return p
}

// walk returns the packages of a directory tree, as "./..." matches them:
// it skips testdata, vendor and names starting with "." or "_", and
// visits at most maxGoWalk directories.
func (g *goBuild) walk(root string) []*goPackage {
	loc, err := g.ip.resolve(root)
	if err != nil || !loc.Info.IsDir() {
		return nil
	}
	var out []*goPackage
	n := 0
	fs.WalkDir(g.ip.ov, cmp.Or(loc.Path, "."), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		base := path.Base(p)
		if p != loc.Path && (base == "testdata" || base == "vendor" ||
			strings.HasPrefix(base, ".") || strings.HasPrefix(base, "_")) {
			return fs.SkipDir
		}
		if n++; n > maxGoWalk {
			g.ip.fail(fmt.Errorf("prefetch: go: pattern under %q: %d directories: %w",
				untrusted.Short(root), maxGoWalk, ErrLimit))
			return fs.SkipAll
		}
		if pkg := g.pkg("/"+p, "", 0, g.inv.cmd.tests); pkg != nil {
			out = append(out, pkg)
		}
		return nil
	})
	return out
}

// importStd returns a standard library package.
func (g *goBuild) importStd(importPath string, depth int) *goPackage {
	return g.pkg(path.Join(g.goroot, "src", importPath), importPath, depth, false)
}

// importDir returns the directory an import path resolves to from the
// package from (nil for the command line): GOROOT/src for paths whose
// first element has no dot, GOROOT's vendor directories for the
// standard library's and the go command's own imports, else the main
// module, its vendor directory, a local replacement or the module
// cache. It returns "" for a path it cannot place.
func (g *goBuild) importDir(from *goPackage, p string) string {
	first, _, _ := strings.Cut(p, "/")
	if !strings.Contains(first, ".") {
		return path.Join(g.goroot, "src", p)
	}
	if from != nil && from.inStd {
		if inDir("/"+from.dir, path.Join(g.goroot, "src/cmd")) {
			return path.Join(g.goroot, "src/cmd/vendor", p)
		}
		return path.Join(g.goroot, "src/vendor", p)
	}
	m := g.mod
	if m == nil {
		return ""
	}
	if p == m.path || strings.HasPrefix(p, m.path+"/") {
		return path.Join("/", m.dir, strings.TrimPrefix(p, m.path))
	}
	if m.vendor {
		return path.Join("/", m.dir, "vendor", p)
	}
	best := ""
	for mp := range m.require {
		if (p == mp || strings.HasPrefix(p, mp+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if best == "" {
		return ""
	}
	rest := strings.TrimPrefix(p, best)
	if dir, ok := m.replace[best]; ok {
		return path.Join(dir, rest)
	}
	if g.modcache == "" {
		return ""
	}
	return path.Join(g.modcache, escapeModule(best)+"@"+escapeModule(m.require[best]), rest)
}

// inDir reports whether the absolute path name is dir or inside it.
func inDir(name, dir string) bool {
	return name == dir || strings.HasPrefix(name, dir+"/") || dir == "/"
}

// escapeModule writes a module path or version the way the module cache
// names it: an upper-case letter becomes "!" and its lower case.
func escapeModule(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// count reports whether another package fits maxGoPackages.
func (g *goBuild) count() bool {
	if len(g.order) < maxGoPackages {
		return true
	}
	if !g.full {
		g.full = true
		g.ip.fail(fmt.Errorf("prefetch: go: %d packages: %w", maxGoPackages, ErrLimit))
	}
	return false
}

// pkg returns the package in a directory, listed once; nil if the image
// has no Go files there. tests selects whether its _test.go files are
// compiled.
func (g *goBuild) pkg(dir, importPath string, depth int, tests bool) *goPackage {
	loc, err := g.ip.resolve(dir)
	if err != nil || !loc.Info.IsDir() {
		return nil
	}
	if p, ok := g.pkgs[loc.Path]; ok {
		return p
	}
	g.pkgs[loc.Path] = nil
	if !g.count() {
		return nil
	}
	entries, _ := g.ip.ov.ReadDir(cmp.Or(loc.Path, "."))
	p := &goPackage{path: importPath, dir: loc.Path, depth: depth,
		inStd: inDir("/"+loc.Path, path.Join(g.goroot, "src"))}
	for _, e := range entries[:min(len(entries), maxDirEntries)] {
		name := e.Name()
		ext := path.Ext(name)
		if e.IsDir() || !goSourceExts[ext] || strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".") {
			continue
		}
		f, err := g.ip.resolve("/" + path.Join(loc.Path, name))
		if err != nil || !isRegular(f.Info) {
			continue
		}
		p.files = append(p.files, f)
		if g.target.matchName(name, tests) {
			p.scan = append(p.scan, f)
		}
	}
	if !slices.ContainsFunc(p.files, func(f overlay.Location) bool { return strings.HasSuffix(f.Path, ".go") }) {
		return nil
	}
	g.pkgs[loc.Path] = p
	g.order = append(g.order, p)
	return p
}

// follow reads the Go files of each level of packages, all of a level at
// once, and adds the packages their imports name as the next level.
func (g *goBuild) follow(level []*goPackage) {
	ip := g.ip
	level = slices.DeleteFunc(level, func(p *goPackage) bool { return p == nil })
	for len(level) > 0 && ip.ctx.Err() == nil {
		var locs []overlay.Location
		var owners []*goPackage
		for _, p := range level {
			if p.depth >= maxGoDepth {
				if !g.deep {
					g.deep = true
					ip.fail(fmt.Errorf("prefetch: go: imports of %q: chain of %d: %w",
						untrusted.Short(p.dir), maxGoDepth, ErrLimit))
				}
				continue
			}
			for _, f := range p.scan {
				locs = append(locs, f)
				owners = append(owners, p)
			}
		}
		var next []*goPackage
		for i, src := range ip.readPrefixes(locs, maxGoHeader, &g.bytes, maxGoHeaderTotal) {
			h := scanGoHeader(src)
			p := owners[i]
			if h.pkg == "" || !g.target.matchConstraint(h.build) {
				continue
			}
			p.names = append(p.names, h.pkg)
			for _, imp := range h.imports {
				if imp == "C" {
					p.cgo = true
					if !g.cgo {
						continue
					}
					imp = "runtime/cgo"
				}
				dir := g.importDir(p, imp)
				if dir == "" {
					continue
				}
				before := len(g.order)
				g.pkg(dir, imp, p.depth+1, false)
				next = append(next, g.order[before:]...)
			}
		}
		level = next
	}
}

// plan adds the packages' files in the order the go command loads them,
// then the tools the command runs, and the module files it reads.
func (g *goBuild) plan(link bool) {
	ip := g.ip
	if m := g.mod; m != nil {
		for _, name := range []string{"go.mod", "go.sum", "vendor/modules.txt"} {
			ip.addPath("/"+path.Join(m.dir, name), ReasonLanguage)
		}
		if !m.vendor && g.modcache != "" {
			for _, mp := range slices.Sorted(maps.Keys(m.require)) {
				if _, ok := m.replace[mp]; !ok {
					ip.addPath(path.Join(g.modcache, "cache/download", escapeModule(mp), "@v",
						escapeModule(m.require[mp])+".mod"), ReasonLanguage)
				}
			}
		}
	}
	asm, cgo := false, false
	for _, p := range g.order {
		for _, f := range p.files {
			ip.add(f, ReasonLanguage)
			asm = asm || strings.HasSuffix(f.Path, ".s")
		}
		cgo = cgo || p.cgo
	}
	if !g.inv.cmd.compile || g.hostTool == "" {
		return
	}
	tools := []string{"compile"}
	if asm {
		tools = append(tools, "asm")
	}
	if cgo && g.cgo {
		tools = append(tools, "cgo")
	}
	if link {
		tools = append(tools, "link")
	}
	if g.inv.cmd.vet {
		tools = append(tools, "vet")
	}
	for _, t := range tools {
		// Tools are static programs in Go's distributions; a build of
		// them that is not gets its libraries.
		if loc, ok := ip.addPath(path.Join(g.hostTool, t), ReasonLanguage); ok && !ip.visited[loc.Path] {
			ip.visited[loc.Path] = true
			if head, err := ip.readPrefix(loc, 4); err == nil && isELF(head) {
				ip.elfProgram(loc)
			}
		}
		if t == "asm" {
			ip.addDir(path.Join(g.goroot, "pkg/include"), 16, ReasonLanguage)
		}
	}
}

// findModule finds the go.mod that governs dir, in it or above it, and
// reads it: the module path, requirements (at most maxGoModules) and
// replacements by local directories.
func (g *goBuild) findModule(dir string) *goModule {
	for d := path.Clean(dir); ; d = path.Dir(d) {
		data, ok := g.ip.readSmallFile(path.Join(d, "go.mod"))
		if ok {
			loc, err := g.ip.resolve(d)
			if err != nil {
				return nil
			}
			return g.parseModule(loc.Path, data)
		}
		if d == "/" {
			return nil
		}
	}
}

func (g *goBuild) parseModule(dir string, data []byte) *goModule {
	m := &goModule{dir: dir, require: map[string]string{}, replace: map[string]string{}}
	block := ""
	for line := range strings.SplitSeq(string(data), "\n") {
		line, _, _ = strings.Cut(line, "//")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] == ")" {
			block = ""
			continue
		}
		verb := block
		if block == "" {
			verb, f = f[0], f[1:]
			if len(f) == 1 && f[0] == "(" {
				block = verb
				continue
			}
		}
		for i := range f {
			if u, err := strconv.Unquote(f[i]); err == nil {
				f[i] = u
			}
		}
		switch {
		case verb == "module" && len(f) == 1:
			m.path = f[0]
		case verb == "require" && len(f) >= 2 && len(m.require) < maxGoModules:
			if validImportPath(f[0]) && validImportPath(f[1]) && !strings.Contains(f[1], "/") {
				m.require[f[0]] = f[1]
			}
		case verb == "replace":
			// "old [v] => new [v]": only local directories change where
			// sources are; a module replacement is looked up as required.
			i := slices.Index(f, "=>")
			if i <= 0 || i+1 >= len(f) || len(m.replace) >= maxGoModules || !validImportPath(f[0]) {
				continue
			}
			switch to := f[i+1]; {
			case strings.HasPrefix(to, "/"):
				m.replace[f[0]] = path.Clean(to)
			case strings.HasPrefix(to, "./") || strings.HasPrefix(to, "../"):
				m.replace[f[0]] = path.Join("/", dir, to)
			case i+2 < len(f) && g.modcache != "" && validImportPath(to) && !strings.Contains(f[i+2], "/"):
				m.replace[f[0]] = path.Join(g.modcache, escapeModule(to)+"@"+escapeModule(f[i+2]))
			}
		}
	}
	if !validImportPath(m.path) {
		return nil
	}
	if g.inv.modFlag != "mod" {
		if loc, err := g.ip.resolve("/" + path.Join(dir, "vendor/modules.txt")); err == nil && isRegular(loc.Info) {
			m.vendor = true
		}
	}
	return m
}
