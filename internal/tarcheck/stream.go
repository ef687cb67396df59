package tarcheck

import (
	"archive/tar"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lazylayer/lazylayer/internal/iox"
	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/toc"
)

// Sentinels are the errors a caller's failures wrap, so that each caller
// keeps its own.
type Sentinels struct {
	// Mismatch: the tar disagrees with the index, or a tar reader would
	// read more or other than the index's entries.
	Mismatch error
	// Invalid: archive/tar rejects the headers.
	Invalid error
	// TooLarge: one entry's headers exceed Stream.MaxHeader.
	TooLarge error
}

// A Stream follows a tar stream, given as its entries' padding and
// headers (Segment) and, in between, the size of each entry's data
// (File), and checks that a tar reader reading it finds, between one
// entry's data and the next, exactly one entry's padding and headers.
// Headers are parsed when their entry's data comes; the end of the
// archive is recognised as it arrives, and what follows it is never held.
// Segments hold at most MaxHeader bytes of headers per entry.
type Stream struct {
	MaxHeader int64
	Errs      Sentinels
	size      int64 // of the tar stream so far
	// group holds the segment bytes since the last file record: padding
	// zero bytes of the previous entry's data, then the next entry's
	// headers.
	group   []byte
	padding int
	// trailer counts the bytes from the first end-of-archive block on, or
	// is 0 before it.
	trailer int64
	hdr     tar.Header
}

// Segment takes bytes of the stream that are no entry's data.
func (s *Stream) Segment(p []byte) error {
	s.size += int64(len(p))
	for len(p) > 0 {
		if s.trailer > 0 {
			if !iox.AllZero(p) {
				return fmt.Errorf("bytes other than zeros after the end of the archive: %w", s.Errs.Mismatch)
			}
			s.trailer += int64(len(p))
			return nil
		}
		room := int64(s.padding) + s.MaxHeader - int64(len(s.group))
		if room <= 0 {
			return fmt.Errorf("tar headers exceed the %d-byte limit: %w", s.MaxHeader, s.Errs.TooLarge)
		}
		n := min(int64(len(p)), room)
		if first := s.padding + BlockSize; len(s.group) < first {
			// Stop at the first header block: zeros there end the archive.
			n = min(n, int64(first-len(s.group)))
		}
		s.group, p = append(s.group, p[:n]...), p[n:]
		if len(s.group) == s.padding+BlockSize && iox.AllZero(s.group[s.padding:]) {
			if !iox.AllZero(s.group[:s.padding]) {
				return s.nonZeroPadding()
			}
			s.trailer, s.group = BlockSize, s.group[:0]
		}
	}
	return nil
}

func (s *Stream) nonZeroPadding() error {
	return fmt.Errorf("padding holds bytes other than zeros: %w", s.Errs.Mismatch)
}

// File takes size bytes of an entry's data, named name: it parses the
// headers before them and checks that they are their entry's data. The
// header is valid until the next call.
func (s *Stream) File(name []byte, size int64) (*tar.Header, error) {
	if s.trailer > 0 {
		return nil, fmt.Errorf("file %q after the end of the archive: %w", untrusted.Short(string(name)), s.Errs.Mismatch)
	}
	if len(s.group) < s.padding || !iox.AllZero(s.group[:s.padding]) {
		return nil, s.nonZeroPadding()
	}
	headers := s.group[s.padding:]
	if len(headers) == 0 {
		return nil, fmt.Errorf("file %q without a tar header: %w", untrusted.Short(string(name)), s.Errs.Mismatch)
	}
	if err := ParseHeaders(headers, &s.hdr, s.Errs); err != nil {
		return nil, err
	}
	if IsSparse(s.hdr.Typeflag, s.hdr.PAXRecords) {
		// The index stands for the expanded contents, the tar for its
		// sparse map and the data it lists: the tar extracts to other
		// contents than the index's.
		return nil, fmt.Errorf("%q is a sparse file, which the index cannot describe: %w", untrusted.Short(s.hdr.Name), s.Errs.Mismatch)
	}
	data := s.hdr.Size
	if HeaderOnly(s.hdr.Typeflag) && data != 0 {
		return nil, fmt.Errorf("header %q of type %q claims %d bytes of data: %w", untrusted.Short(s.hdr.Name), s.hdr.Typeflag, data, s.Errs.Mismatch)
	}
	if string(name) != s.hdr.Name || size != data {
		return nil, fmt.Errorf("file %q of %d bytes follows header %q with %d bytes of data: %w",
			untrusted.Short(string(name)), size, untrusted.Short(s.hdr.Name), data, s.Errs.Mismatch)
	}
	s.size += size
	s.padding = int(-size & (BlockSize - 1))
	s.group = s.group[:0]
	return &s.hdr, nil
}

// Size returns the size of the stream so far.
func (s *Stream) Size() int64 { return s.size }

// End checks the end of the stream: the end-of-archive blocks, which a
// tar reader accepts alone or followed by anything as long as it is at
// least a second block; or, without them, the last entry's padding or any
// part of it, which archive/tar reads as a clean end.
func (s *Stream) End() error {
	switch {
	case s.trailer == BlockSize || s.trailer >= 2*BlockSize:
		return nil
	case s.trailer > 0:
		return fmt.Errorf("the archive ends in %d zero bytes, which tar readers find truncated: %w", s.trailer, s.Errs.Mismatch)
	case len(s.group) > s.padding || !iox.AllZero(s.group):
		return fmt.Errorf("the archive ends in %d bytes that are neither padding nor a whole entry: %w", len(s.group), s.Errs.Mismatch)
	}
	return nil
}

// HeaderOnly reports whether archive/tar reads no data after a header of
// type flag, whatever its size field says. GNU tar skips size bytes after
// all of them but directories, so such headers must claim none.
func HeaderOnly(flag byte) bool {
	switch flag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		return true
	}
	return false
}

// Compare reports the first attribute in which e, an index's entry, and
// hdr, its tar header, differ: name (cleaned), type, mode, uid and gid,
// size, link target (cleaned for hard links), device numbers, times and
// extended attributes. Differences wrap mismatch. Values that come from
// the input are quoted short.
func Compare(e *toc.Entry, hdr *tar.Header, mismatch error) error {
	differ := func(what string, index, tarValue any) error {
		return fmt.Errorf("%s %v in the index, %v in the tar: %w", what, index, tarValue, mismatch)
	}
	quoted := func(s string) string { return fmt.Sprintf("%q", untrusted.Short(s)) }
	name, err := tocjson.CleanName(hdr.Name)
	if err != nil {
		return fmt.Errorf("tar name: %w: %w", mismatch, err)
	}
	if name != e.Name {
		return differ("name", quoted(e.Name), quoted(name))
	}
	if typ := EntryType(hdr.Typeflag); typ != e.Type {
		return differ("type", e.Type, fmt.Sprintf("%q", hdr.Typeflag))
	}
	if hdr.Mode != e.Mode {
		return differ("mode", fmt.Sprintf("%#o", e.Mode), fmt.Sprintf("%#o", hdr.Mode))
	}
	if hdr.Uid != e.UID || hdr.Gid != e.GID {
		return differ("uid:gid", fmt.Sprintf("%d:%d", e.UID, e.GID), fmt.Sprintf("%d:%d", hdr.Uid, hdr.Gid))
	}
	if hdr.Size != e.Size {
		return differ("size", e.Size, hdr.Size)
	}
	link := hdr.Linkname
	if e.Type == toc.TypeHardlink {
		if link, err = tocjson.CleanName(hdr.Linkname); err != nil {
			return fmt.Errorf("tar link name: %w: %w", mismatch, err)
		}
	}
	if link != e.LinkName {
		return differ("link name", quoted(e.LinkName), quoted(link))
	}
	if hdr.Devmajor != e.DevMajor || hdr.Devminor != e.DevMinor {
		return differ("device", fmt.Sprintf("%d,%d", e.DevMajor, e.DevMinor), fmt.Sprintf("%d,%d", hdr.Devmajor, hdr.Devminor))
	}
	for _, tt := range []struct {
		what     string
		toc, tar time.Time
	}{{"modtime", e.ModTime, hdr.ModTime}, {"accesstime", e.AccessTime, hdr.AccessTime}, {"changetime", e.ChangeTime, hdr.ChangeTime}} {
		if !sameTime(tt.toc, tt.tar) {
			return differ(tt.what, tt.toc, tt.tar)
		}
	}
	var xattrs map[string]string // most headers have none: no map
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, PAXXattr); ok {
			if xattrs == nil {
				xattrs = make(map[string]string)
			}
			xattrs[name] = v
		}
	}
	if !maps.Equal(xattrs, e.Xattrs) && len(xattrs)+len(e.Xattrs) > 0 {
		return fmt.Errorf("xattr %q differs between the index and the tar: %w", untrusted.Short(firstDifference(e.Xattrs, xattrs)), mismatch)
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

// sameTime compares timestamps as containers/storage does: the zero
// time and the Unix epoch both mean "not set".
func sameTime(a, b time.Time) bool {
	unset := func(t time.Time) bool { return t.IsZero() || t.Unix() == 0 && t.Nanosecond() == 0 }
	if unset(a) || unset(b) {
		return unset(a) && unset(b)
	}
	return a.Equal(b)
}

// IsSparse reports whether a tar header with this type flag and these
// PAX records is a GNU sparse file: old style (type 'S') or PAX (format
// 0.0, 0.1 or 1.0, GNU.sparse.* records). Tar readers extract its sparse
// map and the data it lists as the expanded file, whose size an index
// records: Stream refuses them.
func IsSparse(typeflag byte, paxRecords map[string]string) bool {
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

// EntryType maps a tar type flag to the model, 0 for types the model
// lacks.
func EntryType(flag byte) toc.EntryType {
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
