package prefetch

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/lazylayer/lazylayer/overlay"
	"github.com/lazylayer/lazylayer/reader"
)

// ErrMalformed is wrapped by errors about a file the planner could not
// parse: a corrupt ELF object or an empty #! line.
var ErrMalformed = errors.New("malformed")

const (
	maxELFCopy      = 64 << 20 // read into memory when a file is no io.ReaderAt
	maxInterpLen    = 4096     // PT_INTERP
	maxDynamicBytes = 16 << 20 // .dynamic and its string table
	maxNeededPerObj = 1024
)

// elfObject is what the dynamic loader needs from an ELF file.
type elfObject struct {
	class   elf.Class
	machine elf.Machine
	data    elf.Data
	interp  string
	needed  []string
	soname  string
	rpath   []string // DT_RPATH, split at ':'
	runpath []string // DT_RUNPATH, split at ':'
}

// compatible reports whether the loader of o could load lib into the same
// process: same class, byte order and machine.
func (o *elfObject) compatible(lib *elfObject) bool {
	return o.class == lib.class && o.machine == lib.machine && o.data == lib.data
}

var elfMagic = []byte(elf.ELFMAG)

func isELF(head []byte) bool { return bytes.HasPrefix(head, elfMagic) }

// readELF parses the dynamic-linking facts of an ELF file of the given
// size. The input is untrusted: debug/elf panics on some corrupt files, so
// a panic becomes an error, and every read is bounded by size and by the
// limits above.
func readELF(r io.ReaderAt, size int64) (obj *elfObject, err error) {
	defer func() {
		if v := recover(); v != nil {
			obj, err = nil, fmt.Errorf("%w ELF: %v", ErrMalformed, v)
		}
	}()
	f, err := elf.NewFile(io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, fmt.Errorf("%w ELF: %w", ErrMalformed, err)
	}
	obj = &elfObject{class: f.Class, machine: f.Machine, data: f.Data}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		if p.Filesz > maxInterpLen {
			return nil, fmt.Errorf("%w ELF: PT_INTERP of %d bytes", ErrMalformed, p.Filesz)
		}
		buf := make([]byte, p.Filesz)
		if _, err := io.ReadFull(p.Open(), buf); err != nil {
			return nil, fmt.Errorf("%w ELF: PT_INTERP: %w", ErrMalformed, err)
		}
		obj.interp, _, _ = strings.Cut(string(buf), "\x00")
		break
	}
	dyn := f.SectionByType(elf.SHT_DYNAMIC)
	if dyn == nil {
		return obj, nil // statically linked
	}
	if dyn.Size > maxDynamicBytes || int(dyn.Link) >= len(f.Sections) ||
		f.Sections[dyn.Link].Size > maxDynamicBytes {
		return nil, fmt.Errorf("%w ELF: dynamic section too large", ErrMalformed)
	}
	if obj.needed, err = f.DynString(elf.DT_NEEDED); err != nil {
		return nil, fmt.Errorf("%w ELF: DT_NEEDED: %w", ErrMalformed, err)
	}
	if len(obj.needed) > maxNeededPerObj {
		return nil, fmt.Errorf("%w ELF: %d DT_NEEDED entries", ErrMalformed, len(obj.needed))
	}
	sonames, _ := f.DynString(elf.DT_SONAME)
	if len(sonames) > 0 {
		obj.soname = sonames[0]
	}
	obj.rpath = dynPath(f, elf.DT_RPATH)
	obj.runpath = dynPath(f, elf.DT_RUNPATH)
	return obj, nil
}

func dynPath(f *elf.File, tag elf.DynTag) []string {
	vals, _ := f.DynString(tag)
	var dirs []string
	for _, v := range vals {
		for d := range strings.SplitSeq(v, ":") {
			if d != "" {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

// readELFFile parses the ELF file at loc. Files that are an io.ReaderAt
// (os.File, fstest.MapFS files, lazy layer files) are read in place, so a
// lazy layer fetches only the headers and the dynamic section.
func (ip *imagePlanner) readELFFile(loc overlay.Location) (*elfObject, error) {
	f, err := ip.ov.Layer(loc.Layer).Open(loc.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := loc.Info.Size()
	if cra, ok := f.(reader.ContextReaderAt); ok {
		return readELF(contextReaderAt{ip.ctx, cra}, size)
	}
	if ra, ok := f.(io.ReaderAt); ok {
		return readELF(ra, size)
	}
	if size > maxELFCopy {
		return nil, fmt.Errorf("%w ELF: %d bytes and no random access", ErrMalformed, size)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxELFCopy))
	if err != nil {
		return nil, err
	}
	return readELF(bytes.NewReader(data), int64(len(data)))
}

// multiarch returns the Debian multiarch tuples a loader searches for an
// object of this machine and class.
func multiarch(obj *elfObject) []string {
	switch obj.machine {
	case elf.EM_X86_64:
		if obj.class == elf.ELFCLASS32 {
			return []string{"x86_64-linux-gnux32"}
		}
		return []string{"x86_64-linux-gnu"}
	case elf.EM_386:
		return []string{"i386-linux-gnu"}
	case elf.EM_AARCH64:
		return []string{"aarch64-linux-gnu"}
	case elf.EM_ARM:
		return []string{"arm-linux-gnueabihf", "arm-linux-gnueabi"}
	case elf.EM_PPC64:
		if obj.data == elf.ELFDATA2LSB {
			return []string{"powerpc64le-linux-gnu"}
		}
		return []string{"powerpc64-linux-gnu"}
	case elf.EM_S390:
		return []string{"s390x-linux-gnu"}
	case elf.EM_RISCV:
		return []string{"riscv64-linux-gnu"}
	case elf.EM_LOONGARCH:
		return []string{"loongarch64-linux-gnu"}
	case elf.EM_MIPS:
		if obj.data == elf.ELFDATA2LSB {
			return []string{"mipsel-linux-gnu", "mips64el-linux-gnuabi64"}
		}
		return []string{"mips-linux-gnu", "mips64-linux-gnuabi64"}
	}
	return nil
}

// platform is the value of $PLATFORM in a search path.
func platform(obj *elfObject) string {
	switch obj.machine {
	case elf.EM_X86_64:
		return "x86_64"
	case elf.EM_386:
		return "i686"
	case elf.EM_AARCH64:
		return "aarch64"
	}
	return strings.TrimPrefix(strings.ToLower(obj.machine.String()), "em_")
}

// defaultLibDirs are the directories a loader searches last, for an object
// like obj: multiarch directories first (Debian, Ubuntu), then lib64 for
// 64-bit objects (Fedora, RHEL, SUSE), then lib. The compatibility check
// skips a wrong-class library found in a directory meant for another ABI.
func defaultLibDirs(obj *elfObject) []string {
	var dirs []string
	for _, t := range multiarch(obj) {
		dirs = append(dirs, "/lib/"+t, "/usr/lib/"+t)
	}
	if obj.class == elf.ELFCLASS64 {
		dirs = append(dirs, "/lib64", "/usr/lib64")
	} else {
		dirs = append(dirs, "/lib32", "/usr/lib32")
	}
	return append(dirs, "/lib", "/usr/lib")
}

// isRegular reports whether fi describes a regular file.
func isRegular(fi fs.FileInfo) bool { return fi != nil && fi.Mode().IsRegular() }
