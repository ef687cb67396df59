package prefetch

import (
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/lazylayer/lazylayer/overlay"
)

// The rules below name classes of files, not images: each applies when the
// image has the file, and costs a few lookups when it does not.

// systemFiles are read at start by libc (name service, resolver), by TLS
// stacks (certificate bundles, in the order Go's crypto/x509 and OpenSSL
// probe them) and by time zone code.
var systemFiles = []string{
	"/etc/nsswitch.conf",
	"/etc/passwd",
	"/etc/group",
	"/etc/host.conf",
	"/etc/hosts",
	"/etc/resolv.conf",
	"/etc/gai.conf",
	"/etc/localtime", // a link into zoneinfo: resolving it adds the zone file
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
	"/etc/pki/tls/cacert.pem",
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
	"/etc/ssl/cert.pem",
	"/etc/ssl/openssl.cnf",
}

// glibcFiles are read by glibc's locale and iconv code; %s is a multiarch
// tuple.
var glibcFiles = []string{
	"/usr/lib/locale/locale-archive",
	"/usr/lib/%s/gconv/gconv-modules.cache",
	"/usr/lib64/gconv/gconv-modules.cache",
}

const maxLocaleFiles = 16

// runtimeFiles adds the system files that exist in the image.
func (ip *imagePlanner) runtimeFiles() {
	for _, name := range systemFiles {
		ip.addPath(name, ReasonRuntime)
	}
	if tz, ok := ip.env["TZ"]; ok {
		if zone := strings.TrimPrefix(tz, ":"); zone != "" {
			if strings.HasPrefix(zone, "/") {
				ip.addPath(zone, ReasonRuntime)
			} else {
				ip.addPath("/usr/share/zoneinfo/"+zone, ReasonRuntime)
			}
		}
	}
	if ip.dynamicMain == nil || strings.HasPrefix(path.Base(ip.interpPath), "ld-musl-") {
		return
	}
	for _, name := range glibcFiles {
		if !strings.Contains(name, "%s") {
			ip.addPath(name, ReasonRuntime)
			continue
		}
		for _, t := range multiarch(ip.dynamicMain) {
			ip.addPath(strings.ReplaceAll(name, "%s", t), ReasonRuntime)
		}
	}
	// A locale named by the environment, as glibc normalises it:
	// "C.UTF-8" lives in /usr/lib/locale/C.utf8.
	for _, key := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if v := ip.env[key]; v != "" && v != "C" && v != "POSIX" {
			ip.addPath("/usr/share/locale/locale.alias", ReasonRuntime) // setlocale reads it first
			if name, ok := normaliseLocale(v); ok {
				ip.addDir("/usr/lib/locale/"+name, maxLocaleFiles, ReasonRuntime)
			}
			break
		}
	}
}

// normaliseLocale rewrites the codeset of a locale name the way glibc
// does before looking for it on disk: lower case, letters and digits only.
// It rejects names that are not one plain path element.
func normaliseLocale(name string) (string, bool) {
	if name == "" || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return "", false
	}
	base, codeset, ok := strings.Cut(name, ".")
	if !ok {
		return name, true
	}
	codeset, modifier, hasMod := strings.Cut(codeset, "@")
	var b strings.Builder
	for _, r := range strings.ToLower(codeset) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	out := base + "." + b.String()
	if hasMod {
		out += "@" + modifier
	}
	return out, true
}

// addDir adds up to limit regular files of a directory, in name order,
// descending into subdirectories depth-first.
func (ip *imagePlanner) addDir(dir string, limit int, reason Reason) {
	root := strings.TrimPrefix(path.Clean(dir), "/")
	if root == "" {
		return
	}
	n := 0
	fs.WalkDir(ip.ov, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || n >= limit {
			return fs.SkipDir
		}
		if !d.IsDir() {
			if _, ok := ip.addPath(p, reason); ok {
				n++
			}
		}
		return nil
	})
}

// A languageRule adds the files a language runtime reads before running
// any user code. It applies to an interpreter whose resolved or invoked
// base name matches; home is the installation prefix (the directory above
// the interpreter's bin directory) and version is the first submatch of
// the name, if any. Files are globs relative to home; .so files among
// them are followed like libraries, since runtimes dlopen them.
type languageRule struct {
	name  *regexp.Regexp
	files func(version string) []string
	// program, if set, adds what the interpreter started with args
	// reads for the program it runs.
	program func(ip *imagePlanner, homes []string, version string, args []string)
}

// maxLanguageFiles bounds what one rule adds.
const maxLanguageFiles = 96

var languageRules = []languageRule{
	{
		// CPython: the modules site.py imports at start and their
		// byte-compiled caches, the site-packages .pth files it scans, and
		// the pyvenv.cfg of a virtual environment.
		name: regexp.MustCompile(`^python(\d+\.\d+)?\d*$`),
		files: func(version string) []string {
			lib := "lib/python" + version
			if version == "" {
				lib = "lib/python3.*"
			}
			var out []string
			for _, m := range []string{
				"os", "site", "stat", "posixpath", "genericpath", "_collections_abc",
				"_sitebuiltins", "codecs", "io", "abc", "types", "sitecustomize",
				"encodings/__init__", "encodings/aliases", "encodings/utf_8",
			} {
				dir, base := path.Split(m)
				out = append(out, lib+"/"+m+".py",
					lib+"/"+dir+"__pycache__/"+base+".cpython-*.pyc")
			}
			return append(out, lib+"/_sysconfigdata_*.py", lib+"/site-packages/*.pth",
				"lib/python3/dist-packages/*.pth", "pyvenv.cfg", "bin/pyvenv.cfg")
		},
		program: (*imagePlanner).pythonProgram,
	},
	{
		// A JDK or JRE: the module image, the JVM library it dlopens and
		// the core native libraries, class data sharing archives, and the
		// security and time zone data read at start.
		name: regexp.MustCompile(`^java$`),
		files: func(string) []string {
			return []string{
				"lib/jvm.cfg", "lib/modules", "lib/server/libjvm.so",
				"lib/server/classes.jsa", "lib/libjava.so", "lib/libjimage.so",
				"lib/libzip.so", "lib/libnio.so", "lib/libnet.so", "lib/tzdb.dat",
				"conf/security/java.security", "lib/security/cacerts",
				"lib/security/default.policy",
			}
		},
	},
	{
		// The go command: its configuration, and for a build, the
		// packages it compiles and the tools it runs.
		name:    regexp.MustCompile(`^go$`),
		files:   func(string) []string { return []string{"go.env"} },
		program: (*imagePlanner).goProgram,
	},
	{
		// CRuby loads RubyGems before the script.
		name: regexp.MustCompile(`^ruby(\d+\.\d+)?[\d.]*$`),
		files: func(string) []string {
			return []string{"lib/ruby/[0-9]*/rubygems.rb", "lib/ruby/[0-9]*/rubygems/*.rb"}
		},
	},
}

// language applies the first language rule that matches the interpreter
// at loc, started by the path startedAs with the arguments args.
func (ip *imagePlanner) language(loc overlay.Location, startedAs string, args []string) {
	for _, rule := range languageRules {
		version, ok := rule.match(path.Base(loc.Path), path.Base(startedAs))
		if !ok {
			continue
		}
		// The prefix above the real binary, and the one above the path it
		// was started by: a virtual environment's bin/python is a link.
		homes := []string{path.Dir(path.Dir(loc.Path))}
		if h := path.Dir(path.Dir(strings.TrimPrefix(startedAs, "/"))); !slices.Contains(homes, h) {
			homes = append(homes, h)
		}
		ip.languageFiles(rule, homes, version)
		if rule.program != nil {
			rule.program(ip, homes, version, args)
		}
		return
	}
}

// match reports whether one of names matches the rule, and the version
// the first one to carry one has.
func (rule languageRule) match(names ...string) (version string, ok bool) {
	for _, n := range names {
		if m := rule.name.FindStringSubmatch(n); m != nil {
			ok = true
			if len(m) > 1 && m[1] != "" {
				return m[1], true
			}
		}
	}
	return "", ok
}

func (ip *imagePlanner) languageFiles(rule languageRule, homes []string, version string) {
	n := 0
	for _, home := range homes {
		for _, pattern := range rule.files(version) {
			matches, _ := fs.Glob(ip.ov, path.Join(escapeGlob(home), pattern))
			for _, m := range matches {
				if n >= maxLanguageFiles {
					return
				}
				lib, ok := ip.addPath(m, ReasonLanguage)
				if !ok {
					continue
				}
				n++
				if strings.HasSuffix(lib.Path, ".so") && !ip.visited[lib.Path] {
					ip.visited[lib.Path] = true
					ip.elfProgram(lib)
				}
			}
		}
	}
}

// escapeGlob quotes the characters path.Match treats specially.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
