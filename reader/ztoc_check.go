package reader

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lazylayer/lazylayer/internal/tarcheck"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/toc/soci"
	"github.com/lazylayer/lazylayer/toc/zstdchunked"
)

// maxZtocHeader bounds one entry's tar headers, as the tar-split check
// does (zstdchunked.DefaultMaxTarHeaderSize, archive/tar's own cap on PAX
// and long-name data): a zTOC that leaves more between two entries hides
// something there.
const maxZtocHeader = zstdchunked.DefaultMaxTarHeaderSize

// ztocErrs are the errors of a zTOC's file table that the tar headers
// contradict: whatever they hold, the zTOC does not describe them.
var ztocErrs = tarcheck.Sentinels{Mismatch: ErrIndexMismatch, Invalid: ErrIndexMismatch, TooLarge: ErrIndexMismatch}

// entryHeaders records where each entry of a zTOC's file table lies in
// the tar stream, and which entries' tar headers have been checked.
type entryHeaders struct {
	// data[i] and size[i] are where entry i's data starts in the tar
	// stream and its size, as the zTOC says. Its headers lie between the
	// block after entry i-1's data and its own.
	data, size []int64
	// checked holds the outcome of checking an entry's headers, by
	// record (int32): nil, or the ErrIndexMismatch reads of it return.
	checked sync.Map
	// whole is set once the whole tar was checked against the file
	// table (see tarChecker): every entry is.
	whole atomic.Bool
}

// newEntryHeaders lays out z's file table in the tar stream.
func newEntryHeaders(z *soci.Ztoc) *entryHeaders {
	h := &entryHeaders{data: make([]int64, len(z.Files)), size: make([]int64, len(z.Files))}
	for i := range z.Files {
		h.data[i], h.size[i] = z.Files[i].Offset, z.Files[i].Size
	}
	return h
}

// headers returns where entry i's headers lie in the tar stream.
func (h *entryHeaders) headers(i int32) (lo, hi int64) {
	if i > 0 {
		lo = blockEnd(h.data[i-1] + h.size[i-1])
	}
	return lo, h.data[i]
}

// blockEnd rounds n up to a whole number of tar blocks.
func blockEnd(n int64) int64 { return (n + tarcheck.BlockSize - 1) &^ (tarcheck.BlockSize - 1) }

// checkEntries checks, before a read returns bytes of a regular file, the
// tar headers of the entries ids (the one opened, and a hard link's
// target, whose content it shows) against the zTOC: they must parse, as
// a tar reader reads them, to exactly one entry with the attributes the
// layer serves for it. The bytes are loaded and verified as a read's are,
// usually from the span the file's data starts in. Outcomes are kept per
// entry; once the whole tar was checked (see tarChecker) there is nothing
// left to do. Other formats need no such check: their index is verified by
// its digest and their content by chunk digests.
func (l *Layer) checkEntries(ctx context.Context, ids ...int32) error {
	if l.spans == nil {
		return nil
	}
	h := l.spans.headers
	for _, id := range ids {
		if h.whole.Load() {
			return nil
		}
		if v, ok := h.checked.Load(id); ok {
			if v != nil {
				return v.(error)
			}
			continue
		}
		l.foreground.Add(1)
		err := l.checkEntry(ctx, id)
		l.foreground.Add(-1)
		if err != nil && !errors.Is(err, ErrIndexMismatch) {
			return err // a load that failed: the next read tries again
		}
		if err != nil {
			h.checked.Store(id, err)
			return err
		}
		h.checked.Store(id, nil)
	}
	return nil
}

// checkEntry checks the tar headers of entry id against it.
func (l *Layer) checkEntry(ctx context.Context, id int32) error {
	h := l.spans.headers
	e := l.entry(id)
	lo, hi := h.headers(id)
	if hi-lo > maxZtocHeader {
		return fmt.Errorf("entry %q: %d bytes of tar headers, over the %d-byte limit: %w", untrusted.Short(e.Name), hi-lo, maxZtocHeader, ErrIndexMismatch)
	}
	b, err := l.tarBytes(ctx, lo, hi)
	if err != nil {
		return fmt.Errorf("entry %q: tar headers: %w", untrusted.Short(e.Name), err)
	}
	s := tarcheck.Stream{MaxHeader: maxZtocHeader, Errs: ztocErrs}
	err = s.Segment(b)
	var hdr *tar.Header
	if err == nil {
		hdr, err = s.File([]byte(tarName(e)), h.size[id])
	}
	if err == nil {
		err = compareZtocEntry(e, hdr)
	}
	if err != nil {
		return fmt.Errorf("entry %q, tar headers at [%d,%d): %w", untrusted.Short(e.Name), lo, hi, err)
	}
	return nil
}

// tarName is the name e has in its tar header.
func tarName(e *toc.Entry) string {
	if e.TarName != "" {
		return e.TarName
	}
	return e.Name
}

// compareZtocEntry reports the first attribute the layer serves for e
// that its tar header hdr disagrees with. A zTOC records no access or
// change times, and the layer serves none.
func compareZtocEntry(e *toc.Entry, hdr *tar.Header) error {
	h := *hdr
	h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
	if err := tarcheck.Compare(e, &h, ErrIndexMismatch); err != nil {
		return err
	}
	if hdr.Uname != e.UserName || hdr.Gname != e.GroupName {
		return fmt.Errorf("owner %q:%q in the index, %q:%q in the tar: %w",
			untrusted.Short(e.UserName), untrusted.Short(e.GroupName), untrusted.Short(hdr.Uname), untrusted.Short(hdr.Gname), ErrIndexMismatch)
	}
	return nil
}

// tarBytes returns bytes [lo, hi) of the tar stream, verified as a read's
// are: each span's by its digest, and those that derive from a window by
// the window's check.
func (l *Layer) tarBytes(ctx context.Context, lo, hi int64) ([]byte, error) {
	s := l.spans
	out := make([]byte, 0, hi-lo)
	k := sort.Search(len(s.spans), func(k int) bool { return s.spans[k].outEnd > lo })
	for pos := lo; pos < hi; k++ {
		if k == len(s.spans) || s.spans[k].out > pos {
			return nil, fmt.Errorf("no span holds tar offset %d: %w", pos, ErrCorrupt)
		}
		sp := &s.spans[k]
		d, err := l.decodeSpan(ctx, k, l.fetchFrame)
		if err != nil {
			return nil, err
		}
		a, b := pos-sp.out, min(hi, sp.outEnd)-sp.out
		if b > int64(len(d.data)) {
			return nil, fmt.Errorf("tar bytes [%d,%d) past span %d's %d bytes: %w", a, b, k, len(d.data), ErrCorrupt)
		}
		if !s.ok[k].Load() && d.tainted(a, b) {
			if err := l.verifyWindow(ctx, k); err != nil {
				return nil, err
			}
		}
		out = append(out, d.data[a:b]...)
		pos = sp.out + b
	}
	return out, nil
}

// tarChecker follows the tar stream of a zTOC layer as wholeLayer
// decompresses it, and checks it against the zTOC's file table, as the
// tar-split check does: between one entry's data and the next lie only
// padding and exactly the next entry's headers, equal to the file table's
// (raw names, link targets and all PAX records included), and after the
// last entry only the end of the archive and zeros.
type tarChecker struct {
	l     *Layer
	files []soci.File
	s     tarcheck.Stream
	pos   int64 // in the tar stream
	next  int   // the entry whose headers or data come next
	data  int64 // bytes of the current entry's data still to come
}

func (l *Layer) newTarChecker() (*tarChecker, error) {
	z, err := soci.Decode(l.cfg.ztoc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return &tarChecker{l: l, files: z.Files, s: tarcheck.Stream{MaxHeader: maxZtocHeader, Errs: ztocErrs}}, nil
}

func (c *tarChecker) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		var m int64
		switch {
		case c.data > 0:
			m = min(int64(len(p)), c.data)
			c.data -= m
		case c.next < len(c.files) && c.pos == c.files[c.next].Offset:
			if err := c.entry(); err != nil {
				return 0, err
			}
			continue
		case c.next < len(c.files):
			m = min(int64(len(p)), c.files[c.next].Offset-c.pos)
			fallthrough
		default:
			if m == 0 {
				m = int64(len(p))
			}
			if err := c.s.Segment(p[:m]); err != nil {
				return 0, fmt.Errorf("tar stream at %d: %w", c.pos, err)
			}
		}
		c.pos += m
		p = p[m:]
	}
	return n, nil
}

// entry checks the headers before the data of the next entry.
func (c *tarChecker) entry() error {
	f := &c.files[c.next]
	hdr, err := c.s.File([]byte(f.Name), f.Size)
	if err == nil {
		err = compareZtocEntry(c.l.entry(int32(c.next)), hdr)
	}
	if err == nil && hdr.Linkname != f.Linkname {
		err = fmt.Errorf("link name %q in the index, %q in the tar: %w", untrusted.Short(f.Linkname), untrusted.Short(hdr.Linkname), ErrIndexMismatch)
	}
	if err == nil && !samePAX(f.PAXRecords, hdr.PAXRecords) {
		err = fmt.Errorf("PAX records differ: %w", ErrIndexMismatch)
	}
	if err != nil {
		return fmt.Errorf("zTOC entry %d %q at %d: %w", c.next, untrusted.Short(f.Name), f.Offset, err)
	}
	c.data = f.Size
	c.next++
	return nil
}

// samePAX reports whether a zTOC's PAX records are the tar header's.
func samePAX(records []soci.PAXRecord, pax map[string]string) bool {
	if len(records) != len(pax) {
		return false
	}
	for i, r := range records {
		// Keys in increasing order, as soci writes them: each once.
		if v, ok := pax[r.Key]; !ok || v != r.Value || i > 0 && records[i-1].Key >= r.Key {
			return false
		}
	}
	return true
}

// close checks the end of the stream: every entry came, then the end of
// the archive.
func (c *tarChecker) close() error {
	for c.data == 0 && c.next < len(c.files) && c.pos == c.files[c.next].Offset {
		if err := c.entry(); err != nil {
			return err
		}
	}
	if c.next < len(c.files) {
		f := &c.files[c.next]
		return fmt.Errorf("zTOC entry %d %q at %d is past the tar's end at %d: %w", c.next, untrusted.Short(f.Name), f.Offset, c.pos, ErrIndexMismatch)
	}
	if err := c.s.End(); err != nil {
		return fmt.Errorf("tar stream: %w", err)
	}
	return nil
}
