package prefetch

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"strings"

	"github.com/lazylayer/lazylayer/overlay"
	"github.com/lazylayer/lazylayer/reader"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrNotFound is wrapped by the errors FromImageConfig reports for a name
// it could not resolve in the image: a program, an interpreter, a library.
var ErrNotFound = errors.New("not found in image")

// ErrLimit is wrapped by the error a planner reports when it stopped at
// one of its bounds (WithMaxItems, WithMaxInterpreterDepth, the number of
// shared objects).
var ErrLimit = errors.New("planner limit reached")

// DefaultPath is the PATH an image config without one runs with, as
// container runtimes set it.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

const (
	maxShebang     = 256 // the kernel's BINPRM_BUF_SIZE
	maxSharedObjs  = 512
	maxConfigBytes = 64 << 10
)

// FromImageConfig plans what a container of the image reads while it
// starts, from its config alone: no process runs.
//
// The program is Entrypoint followed by Cmd. Its first word is looked up
// like execvp does: a name with a slash is taken relative to WorkingDir,
// other names are searched in the PATH of Env (DefaultPath if unset) for
// an executable regular file. A shell started as "sh -c 'cmd ...'" also
// contributes the first command of its script. The plan then follows:
//
//   - #! lines to their interpreter ("/usr/bin/env NAME" searches PATH),
//     recursively, up to WithMaxInterpreterDepth levels;
//   - ELF programs to their PT_INTERP loader and, breadth-first like
//     ld.so, to LD_PRELOAD and /etc/ld.so.preload objects and every
//     DT_NEEDED library: DT_RPATH of the object and its
//     loaders (unless it has DT_RUNPATH), LD_LIBRARY_PATH from Env,
//     DT_RUNPATH, the directories of /etc/ld.so.conf and its includes
//     (the source /etc/ld.so.cache is built from), then the system
//     directories (multiarch, lib64, lib); $ORIGIN, $LIB and $PLATFORM are
//     expanded, and a candidate of another ELF class or machine is skipped
//     as ld.so skips it. musl programs use /etc/ld-musl-ARCH.path instead;
//   - unless WithRuntimeFiles(false), the files libc and the language
//     runtime read at start (the rules are listed in the package documentation).
//
// Every item names the layer that provides the file once the layers are
// overlaid, and its path with symlinks resolved. Priorities follow the
// order of discovery, which is close to the order a starting process
// reads the files in.
//
// The returned plan is never nil. A non-nil error lists, joined, what
// could not be followed (each wrapping ErrNotFound, ErrMalformed or
// ErrLimit); the plan still holds everything else. Only a context error
// aborts planning.
func FromImageConfig(ctx context.Context, img *overlay.FS, cfg v1.ImageConfig, opts ...Option) (*Plan, error) {
	ip := &imagePlanner{
		// The analysis' reads are not the workload's: an access
		// observer recording a profile must not take them for it.
		ctx:     reader.Unobserved(ctx),
		ov:      img,
		res:     img.NewResolver(),
		opts:    buildOptions(opts),
		plan:    &Plan{},
		env:     parseEnv(cfg.Env),
		workdir: cfg.WorkingDir,
		objects: make(map[string]*elfObject),
		visited: make(map[string]bool),
	}
	if ip.workdir == "" {
		ip.workdir = "/"
	}
	argv := append(append([]string(nil), cfg.Entrypoint...), cfg.Cmd...)
	if len(argv) > 0 {
		ip.command(argv[0], argv[1:], ReasonEntrypoint, 0)
		if cmd, ok := shellCommand(argv); ok {
			ip.command(cmd[0], cmd[1:], ReasonEntrypoint, 0)
		}
	}
	if ip.opts.runtimeDirs {
		ip.runtimeFiles()
	}
	if err := ctx.Err(); err != nil {
		return ip.plan, err
	}
	return ip.plan, ip.err()
}

type imagePlanner struct {
	ctx     context.Context
	ov      *overlay.FS
	res     *overlay.Resolver
	opts    options
	plan    *Plan
	env     map[string]string
	workdir string

	priority int
	errs     []error
	dropped  int
	full     bool
	resolves int

	visited map[string]bool       // programs analysed, by resolved path
	objects map[string]*elfObject // parsed ELF files, by resolved path

	// The first dynamically linked program and its PT_INTERP: they decide
	// between glibc and musl rules and the multiarch directories.
	dynamicMain  *elfObject
	interpPath   string
	confDirs     []string // from ld.so.conf, read once
	confDirsSet  bool
	muslDirsList []string // from /etc/ld-musl-ARCH.path, read once
	muslDirsSet  bool
}

// fail records a problem. The first 64 are kept, and every limit reached,
// so that a broken image does not grow the error without bound.
func (ip *imagePlanner) fail(err error) {
	if len(ip.errs) < 64 || errors.Is(err, ErrLimit) {
		ip.errs = append(ip.errs, err)
	} else {
		ip.dropped++
	}
}

// err returns the problems recorded, joined.
func (ip *imagePlanner) err() error {
	errs := ip.errs
	if ip.dropped > 0 {
		errs = append(errs, fmt.Errorf("prefetch: %d more problems", ip.dropped))
	}
	return errors.Join(errs...)
}

// add puts a resolved regular file into the plan at the next priority.
func (ip *imagePlanner) add(loc overlay.Location, reason Reason) {
	if !isRegular(loc.Info) {
		return
	}
	if ip.plan.Len() >= ip.opts.maxItems {
		if !ip.full {
			ip.full = true
			ip.fail(fmt.Errorf("prefetch: %d items: %w", ip.opts.maxItems, ErrLimit))
		}
		return
	}
	ip.plan.Add(Item{Layer: loc.Layer, Path: loc.Path, Priority: ip.priority, Reason: reason})
	ip.priority++
}

// maxResolves bounds the names one FromImageConfig call resolves: a
// typical program takes a few hundred (PATH and library directory
// searches); a hostile image with long search paths must not take more.
const maxResolves = 1 << 15

// resolve resolves a name in the image, counting it against maxResolves.
func (ip *imagePlanner) resolve(name string) (overlay.Location, error) {
	if ip.resolves++; ip.resolves > maxResolves {
		if ip.resolves == maxResolves+1 {
			ip.fail(fmt.Errorf("prefetch: %d name lookups: %w", maxResolves, ErrLimit))
		}
		return overlay.Location{}, ErrLimit
	}
	return ip.res.Resolve(name)
}

// addPath adds the named file if the image has it; absence is no error.
func (ip *imagePlanner) addPath(name string, reason Reason) (overlay.Location, bool) {
	loc, err := ip.resolve(name)
	if err != nil || !isRegular(loc.Info) {
		return overlay.Location{}, false
	}
	ip.add(loc, reason)
	return loc, true
}

func parseEnv(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v // later entries win, as in execve's environment lookups
		}
	}
	return m
}

// command resolves a command name as execvp would and analyses it, run
// with the arguments args.
func (ip *imagePlanner) command(name string, args []string, reason Reason, depth int) {
	loc, startedAs, err := ip.lookPath(name)
	if err != nil {
		ip.fail(err)
		return
	}
	ip.program(loc, startedAs, args, reason, depth)
}

// abs makes name absolute against the working directory, as the kernel
// does for a relative path.
func (ip *imagePlanner) abs(name string) string {
	if strings.HasPrefix(name, "/") {
		return path.Clean(name)
	}
	return path.Join("/", ip.workdir, name)
}

// lookPath finds the executable that running name starts. It returns the
// file, and the absolute path it was found by before links were resolved.
func (ip *imagePlanner) lookPath(name string) (overlay.Location, string, error) {
	if name == "" {
		return overlay.Location{}, "", fmt.Errorf("prefetch: empty program name: %w", ErrNotFound)
	}
	if strings.Contains(name, "/") {
		startedAs := ip.abs(name)
		loc, err := ip.resolve(startedAs)
		if err != nil || !isRegular(loc.Info) {
			return overlay.Location{}, "", fmt.Errorf("prefetch: program %q: %w", name, ErrNotFound)
		}
		return loc, startedAs, nil
	}
	search, ok := ip.env["PATH"]
	if !ok {
		search = DefaultPath
	}
	for dir := range strings.SplitSeq(search, ":") {
		startedAs := path.Join(ip.abs(dir), name)
		loc, err := ip.resolve(startedAs)
		if err == nil && isRegular(loc.Info) && loc.Info.Mode().Perm()&0o111 != 0 {
			return loc, startedAs, nil
		}
	}
	return overlay.Location{}, "", fmt.Errorf("prefetch: program %q in PATH %q: %w", name, search, ErrNotFound)
}

// program adds an executable and what it needs to start: its #!
// interpreter, or its loader and libraries, and its language runtime.
func (ip *imagePlanner) program(loc overlay.Location, startedAs string, args []string, reason Reason, depth int) {
	if ip.ctx.Err() != nil || ip.visited[loc.Path] {
		return
	}
	ip.visited[loc.Path] = true
	ip.add(loc, reason)
	head, err := ip.readPrefix(loc, maxShebang)
	if err != nil {
		ip.fail(fmt.Errorf("prefetch: reading %q: %w", loc.Path, err))
		return
	}
	switch {
	case strings.HasPrefix(string(head), "#!"):
		ip.shebang(loc, head, depth)
	case isELF(head):
		ip.elfProgram(loc)
	}
	if ip.opts.runtimeDirs {
		ip.language(loc, startedAs, args)
	}
}

// shebang follows the interpreter of a script, as the kernel's binfmt_script
// does: the first line, at most maxShebang bytes, names the interpreter
// and at most one argument.
func (ip *imagePlanner) shebang(script overlay.Location, head []byte, depth int) {
	if depth+1 > ip.opts.maxDepth {
		ip.fail(fmt.Errorf("prefetch: interpreter of %q: more than %d levels: %w",
			script.Path, ip.opts.maxDepth, ErrLimit))
		return
	}
	line, _, _ := strings.Cut(string(head[2:]), "\n")
	line = strings.Trim(line, " \t\r")
	interp, arg := line, ""
	if i := strings.IndexAny(line, " \t"); i >= 0 {
		interp, arg = line[:i], line[i+1:]
	}
	if interp == "" {
		ip.fail(fmt.Errorf("prefetch: %q: %w #! line", script.Path, ErrMalformed))
		return
	}
	// The kernel takes the interpreter as a path, never searching PATH.
	if !strings.Contains(interp, "/") {
		interp = "./" + interp
	}
	// The kernel runs "INTERP [ARG] SCRIPT".
	scriptPath := "/" + script.Path
	var args []string
	if arg != "" {
		args = append(args, arg)
	}
	ip.command(interp, append(args, scriptPath), ReasonInterpreter, depth+1)
	if path.Base(interp) == "env" {
		if name, ok := envCommand(arg); ok {
			ip.command(name, []string{scriptPath}, ReasonInterpreter, depth+1)
		}
	}
}

// envCommand returns the program that "env ARGS" runs: the first word that
// is neither an option nor a NAME=value assignment.
func envCommand(args string) (string, bool) {
	for _, f := range strings.Fields(args) {
		if strings.HasPrefix(f, "-") || strings.Contains(f, "=") {
			continue
		}
		return f, true
	}
	return "", false
}

// shellCommand returns the first command of "sh -c SCRIPT" and its
// arguments, when SCRIPT starts with a plain word (after NAME=value
// assignments and "exec"). Arguments stop at the first word that is not
// plain.
func shellCommand(argv []string) ([]string, bool) {
	if len(argv) < 3 {
		return nil, false
	}
	switch path.Base(argv[0]) {
	case "sh", "bash", "dash", "ash", "ksh", "zsh", "mksh":
	default:
		return nil, false
	}
	if !strings.HasPrefix(argv[1], "-") || !strings.Contains(argv[1], "c") {
		return nil, false
	}
	var cmd []string
	for _, w := range strings.Fields(argv[2]) {
		if len(cmd) == 0 && (strings.Contains(w, "=") && !strings.HasPrefix(w, "=") || w == "exec") {
			continue
		}
		if strings.ContainsAny(w, "$`'\"\\;|&<>(){}*?[]~") {
			break
		}
		cmd = append(cmd, w)
	}
	return cmd, len(cmd) > 0
}

// object returns the parsed ELF file at loc, cached.
func (ip *imagePlanner) object(loc overlay.Location) (*elfObject, error) {
	if obj, ok := ip.objects[loc.Path]; ok {
		if obj == nil {
			return nil, fmt.Errorf("%w ELF", ErrMalformed)
		}
		return obj, nil
	}
	obj, err := ip.readELFFile(loc)
	ip.objects[loc.Path] = obj
	return obj, err
}

// loaded is one shared object in the order ld.so maps them.
type loaded struct {
	obj    *elfObject
	origin string  // $ORIGIN: the directory the object was found in
	parent *loaded // the object that needed it first
}

// elfProgram adds the loader and, breadth-first, the libraries of the ELF
// executable at loc.
func (ip *imagePlanner) elfProgram(loc overlay.Location) {
	main, err := ip.object(loc)
	if err != nil {
		ip.fail(fmt.Errorf("prefetch: %q: %w", loc.Path, err))
		return
	}
	musl := false
	if main.interp != "" {
		interp, err := ip.resolve(main.interp)
		if err != nil || !isRegular(interp.Info) {
			ip.fail(fmt.Errorf("prefetch: loader %q of %q: %w", main.interp, loc.Path, ErrNotFound))
		} else {
			ip.add(interp, ReasonELFInterp)
			if ip.dynamicMain == nil {
				ip.dynamicMain, ip.interpPath = main, main.interp
			}
			musl = strings.HasPrefix(path.Base(main.interp), "ld-musl-")
			if !musl {
				ip.addPath("/etc/ld.so.cache", ReasonRuntime)
			}
		}
	}
	// The loader is loaded already; objects that need it by name (libc
	// needs ld-linux, musl programs need libc.musl, the loader's soname)
	// get it without a search.
	names := map[string]bool{}
	if main.interp != "" {
		names[path.Base(main.interp)] = true
		if interp, err := ip.resolve(main.interp); err == nil && isRegular(interp.Info) {
			if obj, err := ip.object(interp); err == nil && obj.soname != "" {
				names[obj.soname] = true
			}
		}
	}
	root := main
	if preload := ip.preload(main); len(preload) > 0 {
		withPreload := *main
		withPreload.needed = append(preload, main.needed...)
		root = &withPreload
	}
	queue := []*loaded{{obj: root, origin: path.Dir("/" + loc.Path)}}
	count := 0
	for len(queue) > 0 && ip.ctx.Err() == nil && ip.resolves <= maxResolves {
		cur := queue[0]
		queue = queue[1:]
		for _, need := range cur.obj.needed {
			if ip.resolves > maxResolves {
				return
			}
			if names[need] {
				continue
			}
			names[need] = true
			if count++; count > maxSharedObjs {
				ip.fail(fmt.Errorf("prefetch: %q: more than %d shared objects: %w", loc.Path, maxSharedObjs, ErrLimit))
				return
			}
			lib, foundAt, ok := ip.findLibrary(need, cur, main, musl)
			if !ok {
				ip.fail(fmt.Errorf("prefetch: library %q needed by %q: %w", need, loc.Path, ErrNotFound))
				continue
			}
			if ip.visited[lib.Path] {
				continue
			}
			ip.visited[lib.Path] = true
			ip.add(lib, ReasonELFNeeded)
			obj, _ := ip.object(lib) // findLibrary parsed it
			if obj.soname != "" {
				names[obj.soname] = true
			}
			queue = append(queue, &loaded{obj: obj, origin: path.Dir(foundAt), parent: cur})
		}
	}
}

// preload returns the objects glibc's loader maps before a dynamically
// linked program's own libraries: LD_PRELOAD from Env, then the lines of
// /etc/ld.so.preload, at most 64.
func (ip *imagePlanner) preload(main *elfObject) []string {
	if main.interp == "" || strings.HasPrefix(path.Base(main.interp), "ld-musl-") {
		return nil
	}
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ':' || r == '\t' || r == '\n' })
	}
	names := split(ip.env["LD_PRELOAD"])
	if data, ok := ip.readSmallFile("/etc/ld.so.preload"); ok {
		ip.addPath("/etc/ld.so.preload", ReasonRuntime)
		names = append(names, split(string(data))...)
	}
	return names[:min(len(names), 64)]
}

// findLibrary searches a DT_NEEDED name the way ld.so does for the object
// cur. It returns the resolved library and the path it was found at.
func (ip *imagePlanner) findLibrary(name string, cur *loaded, main *elfObject, musl bool) (overlay.Location, string, bool) {
	if strings.Contains(name, "/") {
		return ip.tryLibrary(ip.abs(name), main)
	}
	var dirs []string
	expand := func(l *loaded, list []string) {
		for _, d := range list {
			dirs = append(dirs, expandDST(d, l.origin, l.obj)...)
		}
	}
	if len(cur.obj.runpath) == 0 {
		for l := cur; l != nil; l = l.parent {
			if len(l.obj.runpath) == 0 {
				expand(l, l.obj.rpath)
			}
		}
	}
	if v, ok := ip.env["LD_LIBRARY_PATH"]; ok {
		dirs = append(dirs, strings.FieldsFunc(v, func(r rune) bool { return r == ':' || r == ';' })...)
	}
	expand(cur, cur.obj.runpath)
	if musl {
		dirs = append(dirs, ip.muslDirs()...)
	} else {
		dirs = append(dirs, ip.ldSoConfDirs()...)
		dirs = append(dirs, defaultLibDirs(main)...)
	}
	for _, d := range dirs {
		if loc, at, ok := ip.tryLibrary(path.Join(ip.abs(d), name), main); ok {
			return loc, at, true
		}
	}
	return overlay.Location{}, "", false
}

// tryLibrary reports whether name is a library main's loader can load.
func (ip *imagePlanner) tryLibrary(name string, main *elfObject) (overlay.Location, string, bool) {
	loc, err := ip.resolve(name)
	if err != nil || !isRegular(loc.Info) {
		return overlay.Location{}, "", false
	}
	obj, err := ip.object(loc)
	if err != nil || !main.compatible(obj) {
		return overlay.Location{}, "", false
	}
	return loc, path.Clean("/" + name), true
}

// expandDST expands the dynamic string tokens of a search path entry.
// $LIB has several spellings across distributions, so it yields one
// directory for each.
func expandDST(dir, origin string, obj *elfObject) []string {
	repl := func(s, token, value string) string {
		s = strings.ReplaceAll(s, "${"+token+"}", value)
		return strings.ReplaceAll(s, "$"+token, value)
	}
	dir = repl(dir, "ORIGIN", origin)
	dir = repl(dir, "PLATFORM", platform(obj))
	if !strings.Contains(dir, "$LIB") && !strings.Contains(dir, "${LIB}") {
		return []string{dir}
	}
	var out []string
	libs := []string{"lib"}
	for _, t := range multiarch(obj) {
		libs = append([]string{"lib/" + t}, libs...)
	}
	if obj.class == elf.ELFCLASS64 {
		libs = append(libs, "lib64")
	}
	for _, l := range libs {
		out = append(out, repl(dir, "LIB", l))
	}
	return out
}

// ldSoConfDirs returns the directories listed by /etc/ld.so.conf and the
// files it includes, read once and bounded.
func (ip *imagePlanner) ldSoConfDirs() []string {
	if !ip.confDirsSet {
		ip.confDirsSet = true
		budget := 64
		ip.confDirs = ip.readLdSoConf("/etc/ld.so.conf", 0, &budget)
	}
	return ip.confDirs
}

func (ip *imagePlanner) readLdSoConf(name string, depth int, budget *int) []string {
	if depth > 8 || *budget <= 0 {
		return nil
	}
	*budget--
	data, ok := ip.readSmallFile(name)
	if !ok {
		return nil
	}
	var dirs []string
	for line := range strings.SplitSeq(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		fields := strings.FieldsFunc(line, func(r rune) bool {
			return r == ' ' || r == '\t' || r == ':' || r == ',' || r == '\r'
		})
		if len(fields) == 0 || fields[0] == "hwcap" {
			continue
		}
		if fields[0] != "include" {
			for _, f := range fields {
				dir, _, _ := strings.Cut(f, "=") // legacy "dir=libc5"
				if strings.HasPrefix(dir, "/") && len(dirs) < 256 {
					dirs = append(dirs, dir)
				}
			}
			continue
		}
		for _, pattern := range fields[1:] {
			if !strings.HasPrefix(pattern, "/") {
				pattern = path.Join(path.Dir(name), pattern)
			}
			matches, err := fs.Glob(ip.ov, strings.TrimPrefix(path.Clean(pattern), "/"))
			if err != nil {
				continue
			}
			for _, m := range matches {
				dirs = append(dirs, ip.readLdSoConf("/"+m, depth+1, budget)...)
			}
		}
	}
	return dirs
}

// muslDirs returns musl's library path, read once: /etc/ld-musl-ARCH.path,
// or musl's built-in default.
func (ip *imagePlanner) muslDirs() []string {
	if ip.muslDirsSet {
		return ip.muslDirsList
	}
	ip.muslDirsSet = true
	ip.muslDirsList = []string{"/lib", "/usr/local/lib", "/usr/lib"}
	arch := strings.TrimSuffix(strings.TrimPrefix(path.Base(ip.interpPath), "ld-musl-"), ".so.1")
	name := "/etc/ld-musl-" + arch + ".path"
	if data, ok := ip.readSmallFile(name); ok {
		ip.addPath(name, ReasonRuntime)
		ip.muslDirsList = strings.FieldsFunc(string(data), func(r rune) bool { return r == ':' || r == '\n' })
	}
	return ip.muslDirsList
}

// readSmallFile reads a configuration file of the image, at most
// maxConfigBytes of it.
func (ip *imagePlanner) readSmallFile(name string) ([]byte, bool) {
	loc, err := ip.resolve(name)
	if err != nil || !isRegular(loc.Info) {
		return nil, false
	}
	data, err := ip.readPrefix(loc, maxConfigBytes)
	return data, err == nil
}

// readPrefix returns up to n bytes from the start of the file at loc.
func (ip *imagePlanner) readPrefix(loc overlay.Location, n int) ([]byte, error) {
	f, err := ip.ov.Layer(loc.Layer).Open(loc.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	got, err := io.ReadFull(fromStart(ip.ctx, f), buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	return buf[:got], err
}

// fromStart returns a reader of f from its start, reading at ctx when f
// is a lazy layer's file, so that the read stops with ctx and carries its
// values.
func fromStart(ctx context.Context, f fs.File) io.Reader {
	if cra, ok := f.(reader.ContextReaderAt); ok {
		return io.NewSectionReader(contextReaderAt{ctx, cra}, 0, math.MaxInt64)
	}
	return f
}

// contextReaderAt is a ContextReaderAt read at one context.
type contextReaderAt struct {
	ctx context.Context
	r   reader.ContextReaderAt
}

func (c contextReaderAt) ReadAt(p []byte, off int64) (int, error) {
	return c.r.ReadAtContext(c.ctx, p, off)
}
