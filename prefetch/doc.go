// Package prefetch decides what to fetch of a lazily pulled image before a
// container asks for it.
//
// A Plan is an ordered, de-duplicated list of Items: a file (or a byte
// range of one), the layer that provides it, a priority and the Reason it
// is there. Plans come from several sources and Merge into one:
//
//   - FromLandmark: the files an eStargz producer placed before the
//     .prefetch.landmark entry of a layer;
//   - FromTrace: an access trace, parsed by ParseTrace (a plain list of
//     paths, or the JSON-lines recording format WriteTrace writes) or
//     ParseStrace (strace output);
//   - FromImageConfig: a static analysis of the OCI image config, which
//     finds the program Entrypoint and Cmd start through PATH, follows #!
//     interpreters and ELF loaders and libraries the way execve and ld.so
//     do, and adds the files libc and language runtimes read at start;
//   - FromPatterns: a Patterns set, the portable form of a plan.
//
// Planners see an image through an overlay.FS, which stacks layers given
// as io/fs file systems with overlayfs semantics (upper layers win,
// whiteouts and opaque directories hide) and resolves symbolic links
// inside the image. Any fs.FS works as a layer: os.DirFS, fstest.MapFS,
// or a lazy layer of package reader, whose files are fetched only as far
// as the planner reads them (ELF headers and dynamic sections, #! lines, small
// configuration files).
//
// Plan.Patterns exports a plan as path patterns that fit a descriptor
// annotation (AnnotationPatterns, within DefaultPatternBudget bytes), so a
// producer can record the set in the image and a consumer can turn it back
// into a plan with ParsePatterns and FromPatterns. Plan.Chunks maps a plan
// onto the chunks of the layers' TOCs, the unit fetches are made of.
//
// # Rules, not image names
//
// FromImageConfig never looks for a particular image. What it adds beyond
// the program, its interpreters and its libraries follows classes of
// files, each added only if the image has it:
//
//   - the loader cache /etc/ld.so.cache for glibc programs, or musl's
//     /etc/ld-musl-ARCH.path;
//   - name service and resolver configuration (nsswitch.conf, passwd,
//     group, host.conf, hosts, resolv.conf, gai.conf);
//   - /etc/localtime and the zone file it links to, and the zone named by
//     TZ in Env;
//   - certificate bundles, at the paths TLS stacks probe, and openssl.cnf;
//   - for glibc programs: locale-archive, gconv-modules.cache, and, when
//     LC_ALL, LC_CTYPE or LANG names a locale, locale.alias and that
//     locale's directory;
//   - language runtimes, recognised by the interpreter's file name:
//     CPython (pythonX.Y: the encodings package and modules site imports,
//     with their __pycache__, the .pth files site scans, pyvenv.cfg),
//     a JDK's java (lib/modules, jvm.cfg, libjvm.so and the core native
//     libraries it loads, CDS archive, security and time zone data), the
//     go command (go.env) and CRuby (RubyGems). Paths are relative to the installation prefix
//     above the interpreter's bin directory, and shared objects among them
//     are followed like libraries. Node.js needs no rule: its standard
//     library is compiled into the binary.
//   - the modules a CPython program imports: for "python -c CODE", "python
//     -m MODULE", "python SCRIPT" and scripts whose #! names CPython, the
//     import statements that run at import time (outside function bodies)
//     are followed through sys.path (the script's directory or WorkingDir,
//     PYTHONPATH, lib/pythonX.Y, lib-dynload, site-packages and Debian's
//     dist-packages) the way CPython's path finder looks: packages, then
//     extension modules (followed like libraries), then sources, whose
//     __pycache__ byte code is planned in place of the source when the
//     image has it, since only that is read. Each module's own imports are
//     followed, and files are planned in the depth-first order CPython
//     executes them in. Bounds: 256 modules, import chains of 8, 256 KiB
//     scanned of one source and 16 MiB of all, 256 imported names per
//     source, 16384 entries per directory. On a lazy layer of package
//     reader, the sources of each level of imports are fetched together,
//     so planning waits for a round trip per level, not per module.
//   - the packages a go command builds: for "go build", "install", "run",
//     "test" and "vet" (and "generate", which reads the named packages
//     only) of a go program beside GOROOT/src (GOROOT from Env, else the
//     installation the program is in), the package arguments (.go files,
//     directories, "..." patterns, import paths; none is WorkingDir's
//     package; -C moves it) are followed through their imports: into
//     GOROOT/src and its vendor directories, the main module (go.mod), its
//     vendor directory, local replacements and the module cache
//     (GOMODCACHE, else GOPATH or HOME/go, /pkg/mod). Every source file of
//     each package is planned (.go, .s, .h and the other kinds go/build
//     knows, of every system, tests too: the go command opens them all to
//     read their build constraints); imports are taken from the Go files
//     built for the target only: GOOS and GOARCH from Env or go.env, else
//     the system of GOROOT/pkg/tool, matched by file name suffixes and
//     //go:build lines with cgo (CGO_ENABLED, else whether a C compiler is
//     on PATH) and -tags, also from GOFLAGS. A program adds the runtime's
//     packages, a test the test main's. Files come in the order the go
//     command loads packages, then the tools the build runs from
//     pkg/tool/GOOS_GOARCH (compile; asm with pkg/include; cgo; link; vet)
//     and the module files the go command reads (go.mod, go.sum,
//     vendor/modules.txt, the requirements' .mod files in the download
//     cache). Bounds: 1024 packages, import chains of 32, 64 KiB scanned
//     of one source and 64 MiB of all, 256 imports per source, 256
//     package arguments, 4096 directories per "..." pattern, 16384
//     entries per directory, 1024 requirements of the first 64 KiB of a
//     go.mod. On a lazy
//     layer the sources of each level of imports are fetched together.
//
// Every source is bounded (WithMaxItems, WithMaxInterpreterDepth, the
// number of shared objects and configuration bytes read), and every input
// (images, traces, patterns) is treated as untrusted: malformed input
// yields errors, never panics or unbounded work.
//
// # Running a plan
//
// Start (or Run, which also waits) fetches what a plan needs into the
// caches of lazy layers of package reader: each layer's chunks in plan
// order, merged into few multi-range requests, decompressed and verified
// on all cores while later answers arrive. Reads need not wait for it: a
// read of a chunk being prefetched joins that fetch.
//
// A Recorder, given to reader.WithAccessObserver, profiles a workload by
// its first reads: the byte ranges of the chunks it read, per file (up to
// MaxRecordedRanges, else the whole file). Run on its plan fetches those
// chunks only. Passed to writer.WithPrioritizedFiles as plan.Paths(0), it
// rebuilds the layer with the files read first, whole, behind an eStargz
// landmark; FromLandmark then plans one range for later starts. Through an
// image (landmark, AnnotationPatterns) a profile therefore reaches a
// consumer as whole files.
package prefetch
