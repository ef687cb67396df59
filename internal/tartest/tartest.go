// Package tartest generates tar streams for tests: a deterministic tree
// holding every kind of entry a layer can carry. The writer's unit tests and
// the interop suite (through interop/internal/corpus) share it.
package tartest

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/internal/iox"
	"github.com/lazylayer/lazylayer/internal/tarcheck"
	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/toc"
)

// Entry is one entry of the generated tree: its tar header and, for a
// regular file, its content.
type Entry struct {
	Header  *tar.Header
	Content []byte
}

// Kinds returns a deterministic tree that holds every kind of entry a
// layer can carry: nested directories, regular files of awkward sizes
// (empty, one byte, block-sized, all zeros, several MiB of random bytes),
// symlinks, hardlinks, character and block devices, a fifo, USTAR, PAX and
// GNU headers, long names and link targets, xattrs, non-ASCII names and
// sub-second modification times. Its largest file spans three chunks of
// the default 4 MiB chunk size.
func Kinds() []Entry { return kinds(fullSizes) }

// SmallKinds returns the tree of Kinds with its four large files cut down
// (about 2 MiB in all instead of 17 MiB): the same entries with the same
// headers but for file sizes (the small files' random sizes differ too),
// for tests where the volume is not the point, such as -short and -race
// runs. Its largest file, usr/lib/big.bin, still spans several chunks at
// chunk sizes up to 512 KiB.
func SmallKinds() []Entry { return kinds(smallSizes) }

// sizes are the lengths of the large files of the Kinds tree.
type sizes struct{ tool, big, zeros, text int }

var (
	fullSizes  = sizes{tool: 3<<20 + 12345, big: 9<<20 + 7, zeros: 5 << 20, text: 300 << 10}
	smallSizes = sizes{tool: 256<<10 + 12345, big: 1<<20 + 7, zeros: 512 << 10, text: 64 << 10}
)

func kinds(sz sizes) []Entry {
	rng := rand.New(rand.NewChaCha8([32]byte{'l', 'a', 'z', 'y'}))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	text := func(n int) []byte {
		words := []string{"layer ", "chunk ", "gzip ", "member ", "toc ", "seek ", "\n"}
		var b bytes.Buffer
		for b.Len() < n {
			b.WriteString(words[rng.IntN(len(words))])
		}
		return b.Bytes()[:n]
	}
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	long := strings.Repeat("long-directory-name/", 8) // 160 bytes: beyond USTAR's 100
	var es []Entry
	dir := func(name string, format tar.Format) {
		es = append(es, Entry{Header: &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime, Format: format}})
	}
	file := func(name string, content []byte, format tar.Format) *tar.Header {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(content)), Mode: 0o644,
			Uid: 1000, Gid: 1000, Uname: "builder", Gname: "builder", ModTime: mtime, Format: format}
		es = append(es, Entry{Header: h, Content: content})
		return h
	}
	special := func(typ byte, name, link string, major, minor int64) {
		es = append(es, Entry{Header: &tar.Header{Typeflag: typ, Name: name, Linkname: link, Mode: 0o644,
			Devmajor: major, Devminor: minor, ModTime: mtime, Format: tar.FormatUSTAR}})
	}

	dir("./", tar.FormatUSTAR)
	dir("etc/", tar.FormatUSTAR)
	dir("usr/", tar.FormatUSTAR)
	dir("usr/bin/", tar.FormatUSTAR)
	dir("usr/lib/", tar.FormatPAX)
	dir("var/", tar.FormatGNU)
	file("etc/hostname", []byte("lazylayer\n"), tar.FormatUSTAR)
	file("etc/empty", nil, tar.FormatUSTAR)
	file("etc/one", []byte{'x'}, tar.FormatUSTAR)
	file("etc/block-511", text(511), tar.FormatUSTAR)
	file("etc/block-512", text(512), tar.FormatUSTAR)
	file("etc/block-513", text(513), tar.FormatUSTAR)
	file("usr/bin/tool", random(sz.tool), tar.FormatUSTAR)
	file("usr/lib/big.bin", random(sz.big), tar.FormatPAX)
	file("usr/lib/zeros", make([]byte, sz.zeros), tar.FormatUSTAR)
	file("usr/lib/text.txt", text(sz.text), tar.FormatUSTAR)
	for i := range 40 {
		file(fmt.Sprintf("usr/lib/small/%02d.txt", i), text(rng.IntN(3000)), tar.FormatUSTAR)
	}
	x := file("usr/lib/xattrs", text(4000), tar.FormatPAX)
	x.PAXRecords = map[string]string{"SCHILY.xattr.user.lazy": "yes", "SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x10"}
	file("usr/lib/"+long+"pax-long-name.txt", text(2000), tar.FormatPAX)
	file("var/"+long+"gnu-long-name.txt", text(1500), tar.FormatGNU)
	file("usr/lib/ünïcödé-名前.txt", text(700), tar.FormatPAX)
	sub := file("usr/lib/subsecond", text(100), tar.FormatPAX)
	sub.ModTime = mtime.Add(123456789 * time.Nanosecond)
	huge := file("usr/lib/big-ids", text(10), tar.FormatPAX)
	huge.Uid, huge.Gid = 1<<22, 1<<23
	special(tar.TypeSymlink, "usr/bin/sh", "tool", 0, 0)
	special(tar.TypeSymlink, "etc/abs-link", "/usr/bin/tool", 0, 0)
	es = append(es, Entry{Header: &tar.Header{Typeflag: tar.TypeSymlink, Name: "etc/long-link",
		Linkname: "../usr/lib/" + long + "pax-long-name.txt", ModTime: mtime, Format: tar.FormatGNU}})
	special(tar.TypeLink, "usr/bin/tool-hardlink", "usr/bin/tool", 0, 0)
	special(tar.TypeLink, "etc/empty-hardlink", "etc/empty", 0, 0)
	special(tar.TypeChar, "dev-null", "", 1, 3)
	special(tar.TypeBlock, "dev-sda", "", 8, 0)
	special(tar.TypeFifo, "fifo", "", 0, 0)
	dir("var/empty-dir/", tar.FormatGNU)
	return es
}

// WriteTar encodes entries as a tar stream, each header in its own Format.
func WriteTar(entries []Entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := tw.WriteHeader(e.Header); err != nil {
			return nil, fmt.Errorf("entry %q: %w", e.Header.Name, err)
		}
		if _, err := tw.Write(e.Content); err != nil {
			return nil, fmt.Errorf("entry %q: %w", e.Header.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// SparseTar returns a tar holding one GNU sparse file in PAX format 0.1
// (as GNU tar --sparse --sparse-version=0.1 writes it): name, of size
// bytes, zeros but for data at its start, which is all the tar stores.
// archive/tar reads it as the expanded file; it writes no sparse files
// itself, so the records are written under other names and renamed in
// the PAX data, which no checksum covers.
func SparseTar(name string, size int64, data []byte) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o644, Format: tar.FormatPAX,
		PAXRecords: map[string]string{
			"XXX.sparse.numblocks": "1",
			"XXX.sparse.map":       fmt.Sprintf("0,%d", len(data)),
			"XXX.sparse.size":      fmt.Sprint(size),
			"XXX.sparse.name":      name,
		},
	})
	if err == nil {
		_, err = tw.Write(data)
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("tartest: sparse tar: %w", err)
	}
	return bytes.ReplaceAll(b.Bytes(), []byte("XXX.sparse."), []byte("GNU.sparse.")), nil
}

// SmallFiles writes to w a tar of n regular files of 0 to 512 bytes
// (uniformly random sizes, text-like content) in nested directories of
// 100 files, the shape of a layer of sources or Python packages. It streams:
// memory does not grow with n. The same n yields the same bytes.
func SmallFiles(w io.Writer, n int) error {
	rng := rand.New(rand.NewPCG(uint64(n), 512))
	words := []string{"small ", "file ", "layer ", "index ", "entry ", "tar ", "\n"}
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	tw := tar.NewWriter(w)
	body := make([]byte, 0, 512+16)
	for i := range n {
		dir := fmt.Sprintf("pkg%03d/mod%03d/", i/100_000, i/100%1000)
		if i%100 == 0 {
			if i%100_000 == 0 {
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir[:len("pkg000/")], Mode: 0o755, ModTime: mtime}); err != nil {
					return err
				}
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: mtime}); err != nil {
				return err
			}
		}
		size := rng.IntN(513)
		body = body[:0]
		for len(body) < size {
			body = append(body, words[rng.IntN(len(words))]...)
		}
		body = body[:size]
		h := &tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%sfile%06d.py", dir, i), Size: int64(size),
			Mode: 0o644, Uid: 1000, Gid: 1000, Uname: "builder", Gname: "builder", ModTime: mtime}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(body); err != nil {
			return err
		}
	}
	return tw.Close()
}

// HeaderBlocks returns the header blocks archive/tar writes for hdr.
func HeaderBlocks(t testing.TB, hdr *tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := tar.NewWriter(&buf).WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// EntryOf returns the index entry that describes hdr: the attributes
// tarcheck.Compare compares.
func EntryOf(hdr *tar.Header) (*toc.Entry, error) {
	name, err := tocjson.CleanName(hdr.Name)
	if err != nil {
		return nil, err
	}
	e := &toc.Entry{Name: name, Type: tarcheck.EntryType(hdr.Typeflag), Size: hdr.Size, Mode: hdr.Mode, UID: hdr.Uid, GID: hdr.Gid,
		ModTime: hdr.ModTime, AccessTime: hdr.AccessTime, ChangeTime: hdr.ChangeTime, LinkName: hdr.Linkname,
		DevMajor: hdr.Devmajor, DevMinor: hdr.Devminor}
	if e.Type == toc.TypeHardlink {
		if e.LinkName, err = tocjson.CleanName(hdr.Linkname); err != nil {
			return nil, err
		}
	}
	for k, v := range hdr.PAXRecords {
		if x, ok := strings.CutPrefix(k, tarcheck.PAXXattr); ok {
			if e.Xattrs == nil {
				e.Xattrs = map[string]string{}
			}
			e.Xattrs[x] = v
		}
	}
	return e, nil
}

// CheckRebuilt checks that archive/tar reads rebuilt as exactly entries,
// in order, with the attributes tarcheck.Compare compares, and that only
// zeros follow the end of the archive.
func CheckRebuilt(t testing.TB, rebuilt []byte, entries []*toc.Entry) {
	t.Helper()
	r := bytes.NewReader(rebuilt)
	tr := tar.NewReader(r)
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			if i != len(entries) {
				t.Fatalf("archive/tar reads %d entries, the index lists %d", i, len(entries))
			}
			break
		}
		if err != nil {
			t.Fatalf("archive/tar fails after %d entries: %v", i, err)
		}
		if i == len(entries) {
			t.Fatalf("archive/tar reads entry %q beyond the index's %d", hdr.Name, len(entries))
		}
		if err := tarcheck.Compare(entries[i], hdr, errMismatch); err != nil {
			t.Fatalf("archive/tar reads entry %d otherwise: %v", i, err)
		}
	}
	rest, _ := io.ReadAll(r)
	if !iox.AllZero(rest) {
		t.Fatalf("%d bytes after the end of the archive are not all zeros", len(rest))
	}
}

var errMismatch = errors.New("mismatch")

// FileContents returns the content of every regular file of the tar
// stream data by cleaned name, the last entry of a name winning, and of
// the hard links to them: what a reader of the layer should serve. The
// contents are slices of data.
func FileContents(tb testing.TB, data []byte) map[string][]byte {
	tb.Helper()
	clean := func(name string) string { return path.Clean("/" + name)[1:] }
	files := make(map[string][]byte)
	r := bytes.NewReader(data)
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			tb.Fatal(err)
		}
		name := clean(h.Name)
		delete(files, name)
		switch h.Typeflag {
		case tar.TypeReg:
			// archive/tar has read the headers, and not yet the data.
			at := len(data) - r.Len()
			if h.Size > int64(r.Len()) {
				tb.Fatalf("%q: %d bytes past the tar's end", h.Name, h.Size)
			}
			files[name] = data[at : at+int(h.Size) : at+int(h.Size)]
		case tar.TypeLink:
			if c, ok := files[clean(h.Linkname)]; ok {
				files[name] = c
			}
		}
	}
}
