package zstdchunked

import (
	"archive/tar"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/toc"

	"github.com/lazylayer/lazylayer/internal/iox"

	"github.com/lazylayer/lazylayer/internal/untrusted"
)

// CheckTarSplit reads the tar-split stream r and checks it against t, the
// TOC that pins it, as the stream goes, in memory bounded by r's record
// and header limits. It checks that the tar stream the records rebuild
// holds exactly t's entries, as a tar reader (archive/tar, GNU tar, even
// with --ignore-zeros) reads it:
//
//   - each entry is one segment, holding the previous entry's padding
//     (zero bytes) and the entry's headers and nothing else, followed by
//     one file record for exactly the entry's data, with its name;
//   - headers are a header block, preceded by at most one PAX and one
//     GNU long-name and long-link header; global PAX headers, sparse files
//     and PAX records carrying metadata the TOC cannot express (ACLs, file
//     flags, libarchive xattrs, SELinux labels) are refused, and so are
//     links, devices, directories and FIFOs whose headers claim data;
//   - the headers list the TOC's entries one for one, in order, with the
//     same names (after cleaning), types, modes, uids and gids, sizes,
//     link targets, device numbers, times and extended attributes;
//   - after the last entry come only zero bytes: the end-of-archive
//     blocks and any padding.
//
// It also holds the stream to MaxTarSplitSizeFor(t). It returns the size of
// the tar stream the tar-split describes (the layer's uncompressed size).
// Disagreements wrap ErrTarSplitMismatch; limits exceeded,
// ErrTarSplitTooLarge.
func CheckTarSplit(r *TarSplitReader, t *toc.TOC) (tarSize int64, err error) {
	r.limit(MaxTarSplitSizeFor(t))
	s := tarStream{maxHeader: r.cfg.maxHeader, trailer: -1}
	next := 0 // the TOC entry the next header must match
	for {
		rec, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		if rec.typ == int64(TarSplitSegment) {
			if err := s.segment(rec.payload); err != nil {
				return 0, fmt.Errorf("toc: tar-split record %d: %w", r.n-1, err)
			}
			continue
		}
		hdr, err := s.file(rec.name, rec.size)
		if err != nil {
			return 0, fmt.Errorf("toc: tar-split record %d: %w", r.n-1, err)
		}
		if next == len(t.Entries) {
			return 0, fmt.Errorf("toc: tar-split entry %q is not in the TOC: %w", untrusted.Short(hdr.Name), ErrTarSplitMismatch)
		}
		if err := compareTarHeader(t.Entries[next], hdr); err != nil {
			return 0, fmt.Errorf("toc: tar-split entry %q, TOC entry %d %q: %w", untrusted.Short(hdr.Name), next, untrusted.Short(t.Entries[next].Name), err)
		}
		next++
	}
	if err := s.end(); err != nil {
		return 0, fmt.Errorf("toc: tar-split: %w", err)
	}
	if next < len(t.Entries) {
		return 0, fmt.Errorf("toc: TOC entry %d %q (and %d more) missing from the tar-split: %w",
			next, untrusted.Short(t.Entries[next].Name), len(t.Entries)-next-1, ErrTarSplitMismatch)
	}
	return s.size, nil
}

// MaxTarSplitSizeFor returns the largest uncompressed tar-split stream
// that can describe t's entries: per entry, a segment record holding the
// previous entry's padding and the entry's headers (base64), whose size
// follows from the entry's name, link target and extended attributes,
// plus a few KiB of fixed fields, PAX times and ids and record syntax; and
// a file record; then 2 MiB of end-of-archive padding. A reader can hold a
// tar-split's claimed size to it before fetching a byte of it.
func MaxTarSplitSizeFor(t *toc.TOC) int64 {
	const (
		perEntry = 16 << 10
		trailer  = 2 << 20
	)
	n := int64(trailer)
	for _, e := range t.Entries {
		var x int
		for k, v := range e.Xattrs {
			x += len(k) + len(v) + 64
		}
		// The name appears in the header block or in a PAX or long-name
		// record, base64-encoded, and in the file record, where JSON may
		// spell a byte in six; the link target, in the header or records.
		n += perEntry + int64(10*len(e.Name)+4*len(e.LinkName)+2*x)
	}
	return n
}

// tarStream follows the tar stream that tar-split records rebuild, and
// checks that a tar reader reading it finds, between one file record and
// the next, exactly one entry's padding and headers. Headers are parsed
// when their entry's file record comes; the end of the archive is
// recognised as it arrives, and what follows it is never held.
type tarStream struct {
	maxHeader int64
	size      int64 // of the tar stream so far
	// group holds the segment bytes since the last file record: padding
	// zero bytes of the previous entry's data, then the next entry's
	// headers.
	group   []byte
	padding int
	// trailer counts the bytes from the first end-of-archive block on, or
	// is -1 before it.
	trailer int64
	hdr     tar.Header
}

// segment takes a segment record's bytes.
func (s *tarStream) segment(p []byte) error {
	s.size += int64(len(p))
	for len(p) > 0 {
		if s.trailer >= 0 {
			if !iox.AllZero(p) {
				return fmt.Errorf("bytes other than zeros after the end of the archive: %w", ErrTarSplitMismatch)
			}
			s.trailer += int64(len(p))
			return nil
		}
		room := int64(s.padding) + s.maxHeader - int64(len(s.group))
		if room <= 0 {
			return fmt.Errorf("tar headers exceed the %d-byte limit: %w", s.maxHeader, ErrTarSplitTooLarge)
		}
		n := min(int64(len(p)), room)
		if first := s.padding + tarBlockSize; len(s.group) < first {
			// Stop at the first header block: zeros there end the archive.
			n = min(n, int64(first-len(s.group)))
		}
		s.group, p = append(s.group, p[:n]...), p[n:]
		if len(s.group) == s.padding+tarBlockSize && iox.AllZero(s.group[s.padding:]) {
			if !iox.AllZero(s.group[:s.padding]) {
				return errNonZeroPadding
			}
			s.trailer, s.group = tarBlockSize, s.group[:0]
		}
	}
	return nil
}

var errNonZeroPadding = fmt.Errorf("padding holds bytes other than zeros: %w", ErrTarSplitMismatch)

// file takes a file record: it parses the headers before it and checks
// that the record is their entry's data. The header is valid until the
// next call.
func (s *tarStream) file(name []byte, size int64) (*tar.Header, error) {
	if s.trailer >= 0 {
		return nil, fmt.Errorf("file %q after the end of the archive: %w", untrusted.Short(string(name)), ErrTarSplitMismatch)
	}
	if len(s.group) < s.padding || !iox.AllZero(s.group[:s.padding]) {
		return nil, errNonZeroPadding
	}
	headers := s.group[s.padding:]
	if len(headers) == 0 {
		return nil, fmt.Errorf("file %q without a tar header: %w", untrusted.Short(string(name)), ErrTarSplitMismatch)
	}
	if err := parseTarHeaders(headers, &s.hdr); err != nil {
		return nil, err
	}
	if IsSparseTar(s.hdr.Typeflag, s.hdr.PAXRecords) {
		// The file record stands for the expanded contents, the tar for
		// its sparse map and the data it lists: the tar the tar-split
		// rebuilds (and the blob holds) extracts to other contents than
		// the TOC's.
		return nil, fmt.Errorf("%q is a sparse file, which a tar-split cannot describe: %w", untrusted.Short(s.hdr.Name), ErrTarSplitMismatch)
	}
	data := s.hdr.Size
	if headerOnly(s.hdr.Typeflag) && data != 0 {
		return nil, fmt.Errorf("header %q of type %q claims %d bytes of data: %w", untrusted.Short(s.hdr.Name), s.hdr.Typeflag, data, ErrTarSplitMismatch)
	}
	if string(name) != s.hdr.Name || size != data {
		return nil, fmt.Errorf("file %q of %d bytes follows header %q with %d bytes of data: %w",
			untrusted.Short(string(name)), size, untrusted.Short(s.hdr.Name), data, ErrTarSplitMismatch)
	}
	s.size += size
	s.padding = int(-size & (tarBlockSize - 1))
	s.group = s.group[:0]
	return &s.hdr, nil
}

// end checks the end of the stream: the end-of-archive blocks, which a
// tar reader accepts alone or followed by anything as long as it is at
// least a second block; or, without them, the last entry's padding or any
// part of it, which archive/tar reads as a clean end.
func (s *tarStream) end() error {
	switch {
	case s.trailer == tarBlockSize || s.trailer >= 2*tarBlockSize:
		return nil
	case s.trailer >= 0:
		return fmt.Errorf("the archive ends in %d zero bytes, which tar readers find truncated: %w", s.trailer, ErrTarSplitMismatch)
	case len(s.group) > s.padding || !iox.AllZero(s.group):
		return fmt.Errorf("the archive ends in %d bytes that are neither padding nor a whole entry: %w", len(s.group), ErrTarSplitMismatch)
	}
	return nil
}

// headerOnly reports whether archive/tar reads no data after a header of
// type flag, whatever its size field says. GNU tar skips size bytes after
// all of them but directories, so such headers must claim none.
func headerOnly(flag byte) bool {
	switch flag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		return true
	}
	return false
}

// compareTarHeader reports the first attribute in which e and hdr differ.
// Values that come from the input are quoted short.
func compareTarHeader(e *toc.Entry, hdr *tar.Header) error {
	mismatch := func(what string, toc, tarValue any) error {
		return fmt.Errorf("%s %v in the TOC, %v in the tar-split: %w", what, toc, tarValue, ErrTarSplitMismatch)
	}
	quoted := func(s string) string { return fmt.Sprintf("%q", untrusted.Short(s)) }
	name, err := tocjson.CleanName(hdr.Name)
	if err != nil {
		return fmt.Errorf("tar name: %w: %w", ErrTarSplitMismatch, err)
	}
	if name != e.Name {
		return mismatch("name", quoted(e.Name), quoted(name))
	}
	if typ := tarEntryType(hdr.Typeflag); typ != e.Type {
		return mismatch("type", e.Type, fmt.Sprintf("%q", hdr.Typeflag))
	}
	if hdr.Mode != e.Mode {
		return mismatch("mode", fmt.Sprintf("%#o", e.Mode), fmt.Sprintf("%#o", hdr.Mode))
	}
	if hdr.Uid != e.UID || hdr.Gid != e.GID {
		return mismatch("uid:gid", fmt.Sprintf("%d:%d", e.UID, e.GID), fmt.Sprintf("%d:%d", hdr.Uid, hdr.Gid))
	}
	if hdr.Size != e.Size {
		return mismatch("size", e.Size, hdr.Size)
	}
	link := hdr.Linkname
	if e.Type == toc.TypeHardlink {
		if link, err = tocjson.CleanName(hdr.Linkname); err != nil {
			return fmt.Errorf("tar link name: %w: %w", ErrTarSplitMismatch, err)
		}
	}
	if link != e.LinkName {
		return mismatch("link name", quoted(e.LinkName), quoted(link))
	}
	if hdr.Devmajor != e.DevMajor || hdr.Devminor != e.DevMinor {
		return mismatch("device", fmt.Sprintf("%d,%d", e.DevMajor, e.DevMinor), fmt.Sprintf("%d,%d", hdr.Devmajor, hdr.Devminor))
	}
	for _, tt := range []struct {
		what     string
		toc, tar time.Time
	}{{"modtime", e.ModTime, hdr.ModTime}, {"accesstime", e.AccessTime, hdr.AccessTime}, {"changetime", e.ChangeTime, hdr.ChangeTime}} {
		if !sameTarTime(tt.toc, tt.tar) {
			return mismatch(tt.what, tt.toc, tt.tar)
		}
	}
	var xattrs map[string]string // most headers have none: no map
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, paxXattr); ok {
			if xattrs == nil {
				xattrs = make(map[string]string)
			}
			xattrs[name] = v
		}
	}
	if !maps.Equal(xattrs, e.Xattrs) && len(xattrs)+len(e.Xattrs) > 0 {
		return fmt.Errorf("xattr %q differs between the TOC and the tar-split: %w", untrusted.Short(firstDifference(e.Xattrs, xattrs)), ErrTarSplitMismatch)
	}
	return nil
}

// firstDifference returns the first key, in order, whose value differs
// between a and b.
func firstDifference(a, b map[string]string) string {
	keys := slices.Sorted(maps.Keys(a))
	keys = append(keys, slices.Sorted(maps.Keys(b))...)
	slices.Sort(keys)
	for _, k := range keys {
		va, inA := a[k]
		vb, inB := b[k]
		if inA != inB || va != vb {
			return k
		}
	}
	return ""
}

// sameTarTime compares timestamps as containers/storage does: the zero
// time and the Unix epoch both mean "not set".
func sameTarTime(a, b time.Time) bool {
	unset := func(t time.Time) bool { return t.IsZero() || t.Unix() == 0 && t.Nanosecond() == 0 }
	if unset(a) || unset(b) {
		return unset(a) && unset(b)
	}
	return a.Equal(b)
}

// IsSparseTar reports whether a tar header with this type flag and these
// PAX records is a GNU sparse file: old style (type 'S') or PAX (format
// 0.0, 0.1 or 1.0, GNU.sparse.* records). Tar readers extract its sparse
// map and the data it lists as the expanded file, but a tar-split records
// the expanded size, so it cannot rebuild such a tar: CheckTarSplit
// refuses them, and writers of tar-splits must.
func IsSparseTar(typeflag byte, paxRecords map[string]string) bool {
	if typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range paxRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// tarEntryType maps a tar type flag to the model, 0 for types the model
// lacks.
func tarEntryType(flag byte) toc.EntryType {
	switch flag {
	case tar.TypeReg:
		return toc.TypeReg
	case tar.TypeLink:
		return toc.TypeHardlink
	case tar.TypeSymlink:
		return toc.TypeSymlink
	case tar.TypeChar:
		return toc.TypeChar
	case tar.TypeBlock:
		return toc.TypeBlock
	case tar.TypeDir:
		return toc.TypeDir
	case tar.TypeFifo:
		return toc.TypeFIFO
	}
	return 0
}
