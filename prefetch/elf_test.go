package prefetch

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/lazylayer/lazylayer/overlay"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
)

// fakeELF describes a synthetic ELF object for the loader tests.
type fakeELF struct {
	class   elf.Class // ELFCLASS64 unless set
	machine elf.Machine
	interp  string
	needed  []string
	soname  string
	rpath   string
	runpath string
}

// build writes a minimal little-endian ELF file that debug/elf parses:
// header, an optional PT_INTERP, .interp, .dynstr, .dynamic, .shstrtab
// and the section headers.
func (f fakeELF) build() []byte {
	if f.class == elf.ELFCLASSNONE {
		f.class = elf.ELFCLASS64
	}
	if f.machine == elf.EM_NONE {
		f.machine = elf.EM_X86_64
	}
	is64 := f.class == elf.ELFCLASS64
	le := binary.LittleEndian

	dynstr := []byte{0}
	str := func(s string) uint64 {
		off := len(dynstr)
		dynstr = append(append(dynstr, s...), 0)
		return uint64(off)
	}
	type dyn struct {
		tag elf.DynTag
		val uint64
	}
	var dyns []dyn
	for _, n := range f.needed {
		dyns = append(dyns, dyn{elf.DT_NEEDED, str(n)})
	}
	if f.soname != "" {
		dyns = append(dyns, dyn{elf.DT_SONAME, str(f.soname)})
	}
	if f.rpath != "" {
		dyns = append(dyns, dyn{elf.DT_RPATH, str(f.rpath)})
	}
	if f.runpath != "" {
		dyns = append(dyns, dyn{elf.DT_RUNPATH, str(f.runpath)})
	}
	dyns = append(dyns, dyn{elf.DT_NULL, 0})
	var dynamic bytes.Buffer
	for _, d := range dyns {
		if is64 {
			binary.Write(&dynamic, le, elf.Dyn64{Tag: int64(d.tag), Val: d.val})
		} else {
			binary.Write(&dynamic, le, elf.Dyn32{Tag: int32(d.tag), Val: uint32(d.val)})
		}
	}
	interp := []byte(nil)
	if f.interp != "" {
		interp = append([]byte(f.interp), 0)
	}
	shstr := []byte("\x00.interp\x00.dynstr\x00.dynamic\x00.shstrtab\x00")

	ehsize, phsize, shsize := 52, 32, 40
	if is64 {
		ehsize, phsize, shsize = 64, 56, 64
	}
	phnum := 0
	if interp != nil {
		phnum = 1
	}
	offInterp := ehsize + phnum*phsize
	offDynstr := offInterp + len(interp)
	offDynamic := offDynstr + len(dynstr)
	offShstr := offDynamic + dynamic.Len()
	offSh := offShstr + len(shstr)

	type sect struct {
		name, typ        uint32
		off, size, align uint64
		link             uint32
		entsize          uint64
	}
	sections := []sect{
		{},
		{name: 1, typ: uint32(elf.SHT_PROGBITS), off: uint64(offInterp), size: uint64(len(interp)), align: 1},
		{name: 9, typ: uint32(elf.SHT_STRTAB), off: uint64(offDynstr), size: uint64(len(dynstr)), align: 1},
		{name: 17, typ: uint32(elf.SHT_DYNAMIC), off: uint64(offDynamic), size: uint64(dynamic.Len()), align: 8, link: 2},
		{name: 26, typ: uint32(elf.SHT_STRTAB), off: uint64(offShstr), size: uint64(len(shstr)), align: 1},
	}

	var out bytes.Buffer
	ident := [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(f.class), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)}
	if is64 {
		binary.Write(&out, le, elf.Header64{Ident: ident, Type: uint16(elf.ET_DYN), Machine: uint16(f.machine),
			Version: uint32(elf.EV_CURRENT), Phoff: uint64(ehsize), Shoff: uint64(offSh), Ehsize: uint16(ehsize),
			Phentsize: uint16(phsize), Phnum: uint16(phnum), Shentsize: uint16(shsize),
			Shnum: uint16(len(sections)), Shstrndx: 4})
		if phnum == 1 {
			binary.Write(&out, le, elf.Prog64{Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R),
				Off: uint64(offInterp), Filesz: uint64(len(interp)), Memsz: uint64(len(interp)), Align: 1})
		}
	} else {
		binary.Write(&out, le, elf.Header32{Ident: ident, Type: uint16(elf.ET_DYN), Machine: uint16(f.machine),
			Version: uint32(elf.EV_CURRENT), Phoff: uint32(ehsize), Shoff: uint32(offSh), Ehsize: uint16(ehsize),
			Phentsize: uint16(phsize), Phnum: uint16(phnum), Shentsize: uint16(shsize),
			Shnum: uint16(len(sections)), Shstrndx: 4})
		if phnum == 1 {
			binary.Write(&out, le, elf.Prog32{Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R),
				Off: uint32(offInterp), Filesz: uint32(len(interp)), Memsz: uint32(len(interp)), Align: 1})
		}
	}
	out.Write(interp)
	out.Write(dynstr)
	out.Write(dynamic.Bytes())
	out.Write(shstr)
	for _, s := range sections {
		entsize := s.entsize
		if s.typ == uint32(elf.SHT_DYNAMIC) {
			entsize = uint64(dynamic.Len() / len(dyns))
		}
		if is64 {
			binary.Write(&out, le, elf.Section64{Name: s.name, Type: s.typ, Off: s.off, Size: s.size,
				Link: s.link, Addralign: s.align, Entsize: entsize})
		} else {
			binary.Write(&out, le, elf.Section32{Name: s.name, Type: s.typ, Off: uint32(s.off), Size: uint32(s.size),
				Link: s.link, Addralign: uint32(s.align), Entsize: uint32(entsize)})
		}
	}
	return out.Bytes()
}

func elfFile(f fakeELF) *fstest.MapFile { return &fstest.MapFile{Data: f.build(), Mode: 0o755} }

func TestReadELFFake(t *testing.T) {
	obj, err := readELF(bytes.NewReader(fakeELF{
		interp: "/lib/ld.so", needed: []string{"liba.so", "libb.so"}, soname: "libme.so",
		rpath: "/r1:$ORIGIN/r2", runpath: "/u",
	}.build()), 1<<20)
	require.NoError(t, err)
	require.Equal(t, "/lib/ld.so", obj.interp)
	require.Equal(t, []string{"liba.so", "libb.so"}, obj.needed)
	require.Equal(t, "libme.so", obj.soname)
	require.Equal(t, []string{"/r1", "$ORIGIN/r2"}, obj.rpath)
	require.Equal(t, []string{"/u"}, obj.runpath)

	obj, err = readELF(bytes.NewReader(fakeELF{class: elf.ELFCLASS32, machine: elf.EM_386, needed: []string{"x"}}.build()), 1<<20)
	require.NoError(t, err)
	require.Equal(t, elf.ELFCLASS32, obj.class)
	require.Equal(t, []string{"x"}, obj.needed)

	data := fakeELF{needed: []string{"liba.so"}}.build()
	for _, cut := range []int{0, 10, 64, len(data) / 2, len(data) - 1} {
		_, err := readELF(bytes.NewReader(data[:cut]), int64(cut))
		require.ErrorIs(t, err, ErrMalformed, "cut at %d", cut)
	}
}

const glibcLoader = "/lib64/ld-linux-x86-64.so.2"

// TestLibrarySearchOrder checks the ld.so rules on synthetic objects.
func TestLibrarySearchOrder(t *testing.T) {
	layer := fstest.MapFS{
		"lib64/ld-linux-x86-64.so.2": elfFile(fakeELF{soname: "ld-linux-x86-64.so.2"}),
		"etc/ld.so.conf":             file("# comment\ninclude ld.so.conf.d/*.conf\n/opt/direct/lib\n"),
		"etc/ld.so.conf.d/a.conf":    file("/opt/conf/lib"),
		"etc/ld.so.cache":            file("cache"),

		// main: RPATH $ORIGIN/../rp applies to main and, through the
		// loader chain, to libchain (needed by libmid, which has no
		// RUNPATH).
		"app/bin/main": elfFile(fakeELF{interp: glibcLoader, rpath: "$ORIGIN/../rp",
			needed: []string{"libmid.so", "libenv.so", "libconf.so", "libdirect.so", "libwide.so", "libsys.so", "libgone.so"}}),
		"app/rp/libmid.so":   elfFile(fakeELF{needed: []string{"libchain.so", "librun.so"}}),
		"app/rp/libchain.so": elfFile(fakeELF{}),
		// librun: libmid has no RUNPATH, so the system copy wins over the
		// RUNPATH copy of another object.
		"opt/run/librun.so":                   elfFile(fakeELF{}),
		"usr/lib/x86_64-linux-gnu/librun.so":  elfFile(fakeELF{runpath: "/opt/run2", rpath: "/app/rp", needed: []string{"librpath.so", "libr2.so"}}),
		"app/rp/librpath.so":                  elfFile(fakeELF{}), // not found: RUNPATH disables every RPATH for librun's needs
		"usr/lib/librpath.so":                 elfFile(fakeELF{}),
		"opt/run2/libr2.so":                   elfFile(fakeELF{}),
		"env/lib/libenv.so":                   elfFile(fakeELF{}),
		"opt/conf/lib/libconf.so":             elfFile(fakeELF{}),
		"opt/direct/lib/libdirect.so":         elfFile(fakeELF{}),
		"env/lib/libwide.so":                  elfFile(fakeELF{class: elf.ELFCLASS32, machine: elf.EM_386}), // wrong class: skipped
		"usr/lib64/libwide.so":                elfFile(fakeELF{}),
		"usr/lib/x86_64-linux-gnu/libsys.so":  elfFile(fakeELF{needed: []string{"ld-linux-x86-64.so.2"}}),
		"usr/lib/x86_64-linux-gnu/libsys2.so": elfFile(fakeELF{}),
		"lib":                                 link("usr/lib"),
	}
	plan, err := FromImageConfig(context.Background(), overlay.New(layer), v1.ImageConfig{
		Entrypoint: []string{"/app/bin/main"},
		Env:        []string{"LD_LIBRARY_PATH=/env/lib"},
	}, WithRuntimeFiles(false))
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorContains(t, err, `"libgone.so"`)
	require.Equal(t, []string{
		"app/bin/main",
		"lib64/ld-linux-x86-64.so.2",
		"etc/ld.so.cache",
		"app/rp/libmid.so",
		"env/lib/libenv.so",
		"opt/conf/lib/libconf.so",
		"opt/direct/lib/libdirect.so",
		"usr/lib64/libwide.so",
		"usr/lib/x86_64-linux-gnu/libsys.so",
		"app/rp/libchain.so",
		"usr/lib/x86_64-linux-gnu/librun.so",
		"usr/lib/librpath.so",
		"opt/run2/libr2.so",
	}, plan.Paths(-1))
}

func TestPreload(t *testing.T) {
	layer := fstest.MapFS{
		"lib64/ld-linux-x86-64.so.2": elfFile(fakeELF{}),
		"etc/ld.so.preload":          file("/opt/hook/libhook.so\n"),
		"opt/hook/libhook.so":        elfFile(fakeELF{}),
		"usr/lib/libenv.so":          elfFile(fakeELF{needed: []string{"libdep.so"}}),
		"usr/lib/libdep.so":          elfFile(fakeELF{}),
		"usr/lib/liba.so":            elfFile(fakeELF{}),
		"bin/app":                    elfFile(fakeELF{interp: glibcLoader, needed: []string{"liba.so"}}),
	}
	plan, err := FromImageConfig(context.Background(), overlay.New(layer), v1.ImageConfig{
		Cmd: []string{"/bin/app"}, Env: []string{"LD_PRELOAD=libenv.so"},
	}, WithRuntimeFiles(false))
	require.NoError(t, err)
	require.Equal(t, []string{"bin/app", "lib64/ld-linux-x86-64.so.2", "etc/ld.so.preload",
		"usr/lib/libenv.so", "opt/hook/libhook.so", "usr/lib/liba.so", "usr/lib/libdep.so"}, plan.Paths(-1))
}

func TestMuslLibraryPath(t *testing.T) {
	layer := fstest.MapFS{
		"lib/ld-musl-x86_64.so.1":       elfFile(fakeELF{soname: "libc.musl-x86_64.so.1"}),
		"etc/ld-musl-x86_64.path":       file("/opt/m\n/lib"),
		"etc/ld.so.cache":               file("not for musl"),
		"usr/lib/locale/locale-archive": file("not for musl"),
		"bin/app":                       elfFile(fakeELF{interp: "/lib/ld-musl-x86_64.so.1", needed: []string{"libm.so", "libc.musl-x86_64.so.1"}}),
		"opt/m/libm.so":                 elfFile(fakeELF{}),
		"usr/lib/libm.so":               elfFile(fakeELF{}),
	}
	plan, err := FromImageConfig(context.Background(), overlay.New(layer), v1.ImageConfig{Cmd: []string{"/bin/app"}})
	require.NoError(t, err)
	require.Equal(t, []string{"bin/app", "lib/ld-musl-x86_64.so.1", "etc/ld-musl-x86_64.path", "opt/m/libm.so"}, plan.Paths(-1))
}

func TestLibraryLimits(t *testing.T) {
	// A cycle of libraries needing each other ends; each file is planned once.
	layer := fstest.MapFS{
		"bin/app":                    elfFile(fakeELF{interp: glibcLoader, needed: []string{"liba.so"}}),
		"lib64/ld-linux-x86-64.so.2": elfFile(fakeELF{}),
		"usr/lib/liba.so":            elfFile(fakeELF{needed: []string{"libb.so"}}),
		"usr/lib/libb.so":            elfFile(fakeELF{needed: []string{"liba.so", "libb.so"}}),
	}
	plan, err := FromImageConfig(context.Background(), overlay.New(layer), v1.ImageConfig{Cmd: []string{"/bin/app"}}, WithRuntimeFiles(false))
	require.NoError(t, err)
	require.Equal(t, []string{"bin/app", "lib64/ld-linux-x86-64.so.2", "usr/lib/liba.so", "usr/lib/libb.so"}, plan.Paths(-1))

	_, err = FromImageConfig(context.Background(), overlay.New(layer), v1.ImageConfig{Cmd: []string{"/bin/app"}},
		WithRuntimeFiles(false), WithMaxItems(2))
	require.ErrorIs(t, err, ErrLimit)

	// Hundreds of missing libraries searched through hundreds of
	// configured directories stop at the lookup budget.
	var conf, needed []string
	for i := range 256 {
		conf = append(conf, fmt.Sprintf("/opt/d%d", i))
	}
	for i := range 300 {
		needed = append(needed, fmt.Sprintf("libmissing%d.so", i))
	}
	layer["etc/ld.so.conf"] = file(strings.Join(conf, "\n"))
	layer["bin/app"] = elfFile(fakeELF{interp: glibcLoader, needed: needed})
	plan, err = FromImageConfig(context.Background(), overlay.New(layer), v1.ImageConfig{Cmd: []string{"/bin/app"}})
	require.ErrorIs(t, err, ErrLimit)
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, []string{"bin/app", "lib64/ld-linux-x86-64.so.2"}, plan.Paths(-1))
}

func TestExpandDST(t *testing.T) {
	obj := &elfObject{class: elf.ELFCLASS64, machine: elf.EM_X86_64}
	require.Equal(t, []string{"/o/../lib"}, expandDST("$ORIGIN/../lib", "/o", obj))
	require.Equal(t, []string{"/o/x86_64"}, expandDST("${ORIGIN}/$PLATFORM", "/o", obj))
	require.Equal(t, []string{"/lib/x86_64-linux-gnu/p", "/lib/p", "/lib64/p"}, expandDST("/$LIB/p", "/o", obj))
}

// TestReadELFWithoutReaderAt reads an ELF file from a layer whose files
// are plain streams.
func TestReadELFWithoutReaderAt(t *testing.T) {
	img := overlay.New(streamFS{fstest.MapFS{"lib.so": elfFile(fakeELF{needed: []string{"x.so"}})}})
	loc, err := img.Resolve("lib.so")
	require.NoError(t, err)
	obj, err := (&imagePlanner{ctx: t.Context(), ov: img}).readELFFile(loc)
	require.NoError(t, err)
	require.Equal(t, []string{"x.so"}, obj.needed)
}

// streamFS hides the io.ReaderAt of its files.
type streamFS struct{ fstest.MapFS }

func (s streamFS) Open(name string) (fs.File, error) {
	f, err := s.MapFS.Open(name)
	if err != nil {
		return nil, err
	}
	return struct{ fs.File }{f}, nil
}

func TestRealELFFiles(t *testing.T) {
	for _, name := range []string{"/usr/bin/ls", "/bin/sh"} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		fi, _ := f.Stat()
		obj, err := readELF(f, fi.Size())
		f.Close()
		require.NoError(t, err, name)
		require.NotEmpty(t, obj.needed, name)
	}
}

func TestLanguageRules(t *testing.T) {
	layer := fstest.MapFS{
		"lib64/ld-linux-x86-64.so.2": elfFile(fakeELF{}),
		// A JDK: libjvm.so is dlopened, so its libraries are followed too.
		"usr/lib/jvm/jdk/bin/java":             elfFile(fakeELF{interp: glibcLoader}),
		"usr/lib/jvm/jdk/lib/modules":          file("jimage"),
		"usr/lib/jvm/jdk/lib/server/libjvm.so": elfFile(fakeELF{needed: []string{"libstdc++.so.6"}}),
		"usr/lib/libstdc++.so.6":               elfFile(fakeELF{}),
		"usr/lib/jvm/jdk/lib/src.zip":          file("not read at start"),
		"usr/bin/java":                         link("../lib/jvm/jdk/bin/java"),
		// CPython in a virtual environment.
		"usr/bin/python3.12":                                                elfFile(fakeELF{interp: glibcLoader}),
		"usr/lib/python3.12/encodings/__init__.py":                          file(""),
		"usr/lib/python3.12/encodings/__pycache__/__init__.cpython-312.pyc": file(""),
		"usr/lib/python3.12/json/__init__.py":                               file("not read at start"),
		"opt/venv/bin/python":                                               link("/usr/bin/python3.12"),
		"opt/venv/pyvenv.cfg":                                               file("home = /usr/bin"),
		"opt/venv/lib/python3.12/site-packages/extra.pth":                   file(""),
	}
	img := overlay.New(layer)
	plan, err := FromImageConfig(context.Background(), img, v1.ImageConfig{Entrypoint: []string{"java", "-jar", "app.jar"}})
	require.NoError(t, err)
	require.Equal(t, []string{
		"usr/lib/jvm/jdk/bin/java", "lib64/ld-linux-x86-64.so.2", "usr/lib/jvm/jdk/lib/modules",
		"usr/lib/jvm/jdk/lib/server/libjvm.so", "usr/lib/libstdc++.so.6",
	}, plan.Paths(-1))

	plan, err = FromImageConfig(context.Background(), img, v1.ImageConfig{
		Entrypoint: []string{"/opt/venv/bin/python"}, Cmd: []string{"-m", "app"},
	})
	require.NoError(t, err)
	require.Equal(t, []string{
		"usr/bin/python3.12", "lib64/ld-linux-x86-64.so.2",
		"usr/lib/python3.12/encodings/__init__.py",
		"usr/lib/python3.12/encodings/__pycache__/__init__.cpython-312.pyc",
		"opt/venv/lib/python3.12/site-packages/extra.pth", "opt/venv/pyvenv.cfg",
	}, plan.Paths(-1))
}
