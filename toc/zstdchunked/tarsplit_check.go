package zstdchunked

import (
	"fmt"
	"io"

	"github.com/lazylayer/lazylayer/internal/tarcheck"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/toc"
)

// tarSplitErrs are the errors of the tar-split check.
var tarSplitErrs = tarcheck.Sentinels{Mismatch: ErrTarSplitMismatch, Invalid: ErrInvalidTarSplit, TooLarge: ErrTarSplitTooLarge}

// IsSparseTar reports whether a tar header with this type flag and these
// PAX records is a GNU sparse file: old style (type 'S') or PAX (format
// 0.0, 0.1 or 1.0, GNU.sparse.* records). Tar readers extract its sparse
// map and the data it lists as the expanded file, but a tar-split records
// the expanded size, so it cannot rebuild such a tar: CheckTarSplit
// refuses them, and writers of tar-splits must.
func IsSparseTar(typeflag byte, paxRecords map[string]string) bool {
	return tarcheck.IsSparse(typeflag, paxRecords)
}

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
	s := tarcheck.Stream{MaxHeader: r.cfg.maxHeader, Errs: tarSplitErrs}
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
			if err := s.Segment(rec.payload); err != nil {
				return 0, fmt.Errorf("toc: tar-split record %d: %w", r.n-1, err)
			}
			continue
		}
		hdr, err := s.File(rec.name, rec.size)
		if err != nil {
			return 0, fmt.Errorf("toc: tar-split record %d: %w", r.n-1, err)
		}
		if next == len(t.Entries) {
			return 0, fmt.Errorf("toc: tar-split entry %q is not in the TOC: %w", untrusted.Short(hdr.Name), ErrTarSplitMismatch)
		}
		if err := tarcheck.Compare(t.Entries[next], hdr, ErrTarSplitMismatch); err != nil {
			return 0, fmt.Errorf("toc: tar-split entry %q, TOC entry %d %q: %w", untrusted.Short(hdr.Name), next, untrusted.Short(t.Entries[next].Name), err)
		}
		next++
	}
	if err := s.End(); err != nil {
		return 0, fmt.Errorf("toc: tar-split: %w", err)
	}
	if next < len(t.Entries) {
		return 0, fmt.Errorf("toc: TOC entry %d %q (and %d more) missing from the tar-split: %w",
			next, untrusted.Short(t.Entries[next].Name), len(t.Entries)-next-1, ErrTarSplitMismatch)
	}
	return s.Size(), nil
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
