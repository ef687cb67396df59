package writer

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// entryLog holds the TOC entries of the layer being written, compactly.
// As toc.Entry values (256 bytes each, plus a name, a digest string and a
// chunk slice) the entries of a layer of a million small files took half
// a gigabyte, more than all the writer's buffers; as records of varints
// they take about 50 bytes each. A record holds a name as the length of
// the prefix it shares with the previous name plus the rest, owner names
// as indexes into a table, and each chunk's member by index: members'
// blob offsets and chunks' digests arrive later, from the pipeline, and
// are kept apart (index) until the records are decoded.
//
// Records are appended to pages, never split across two, so that the log
// never copies itself as it grows.
type entryLog struct {
	pages    pagedBytes
	n        int    // records
	chunks   int    // chunks recorded
	prevName []byte // the last record's name
	owners   []string
	ownerIDs map[string]uint64
	rec      []byte // the record being encoded
	prev     logAttrs
	member   int // the last chunk's member
}

// logAttrs are the attributes of an entry that a record holds only when
// they differ from the previous record's.
type logAttrs struct {
	mode     int64
	uid, gid int
	dev      [2]int64
	owners   [2]uint64
	times    [3]time.Time
}

func (a *logAttrs) same(b *logAttrs) bool {
	return a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.dev == b.dev && a.owners == b.owners &&
		a.times[0].Equal(b.times[0]) && a.times[1].Equal(b.times[1]) && a.times[2].Equal(b.times[2])
}

// Kinds of a record's file digest.
const (
	digestNone     = iota
	digestEmpty    // sha256 of no bytes
	digestOneChunk // the file's only chunk's digest
	digestStored   // 32 bytes follow
)

// loggedChunk is what the producer knows of a chunk when it records it.
type loggedChunk struct {
	size, inner int64
	member      int
	zeros       bool
}

// add appends a record of e, whose chunks are given by chunks rather than
// e.Chunks; tarLink is the tar's own spelling of a hardlink's target when
// it differs from e.LinkName ("" otherwise). e's Digest, when the file has
// more than one chunk, must be set.
func (l *entryLog) add(e *toc.Entry, tarLink string, chunks []loggedChunk) {
	b := l.rec[:0]
	b = append(b, byte(e.Type))
	shared := 0
	for shared < len(l.prevName) && shared < len(e.Name) && l.prevName[shared] == e.Name[shared] {
		shared++
	}
	b = binary.AppendUvarint(b, uint64(shared))
	b = appendString(b, e.Name[shared:])
	l.prevName = append(l.prevName[:shared], e.Name[shared:]...)
	b = appendString(b, e.TarName)
	b = appendString(b, e.LinkName)
	b = appendString(b, tarLink)
	b = binary.AppendVarint(b, e.Size)
	// The attributes that neighbours share are written only when they
	// change.
	attrs := logAttrs{
		mode: e.Mode, uid: e.UID, gid: e.GID, dev: [2]int64{e.DevMajor, e.DevMinor},
		owners: [2]uint64{l.owner(e.UserName), l.owner(e.GroupName)},
		times:  [3]time.Time{e.ModTime, e.AccessTime, e.ChangeTime},
	}
	if attrs.same(&l.prev) {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.AppendVarint(b, attrs.mode)
		b = binary.AppendVarint(b, int64(attrs.uid))
		b = binary.AppendVarint(b, int64(attrs.gid))
		b = binary.AppendVarint(b, attrs.dev[0])
		b = binary.AppendVarint(b, attrs.dev[1])
		b = binary.AppendUvarint(b, attrs.owners[0])
		b = binary.AppendUvarint(b, attrs.owners[1])
		for _, t := range attrs.times {
			b = appendTime(b, t)
		}
		l.prev = attrs
	}
	b = binary.AppendUvarint(b, uint64(len(e.Xattrs)))
	for _, k := range slices.Sorted(maps.Keys(e.Xattrs)) {
		b = appendString(b, k)
		b = appendString(b, e.Xattrs[k])
	}
	switch {
	case e.Type != toc.TypeReg:
		b = append(b, digestNone)
	case len(chunks) == 0:
		b = append(b, digestEmpty)
	case len(chunks) == 1:
		b = append(b, digestOneChunk)
	default:
		b = append(b, digestStored)
		b, _ = hex.AppendDecode(b, []byte(e.Digest.Encoded())) // hex, from sha256
	}
	b = binary.AppendUvarint(b, uint64(len(chunks)))
	for _, c := range chunks {
		b = binary.AppendUvarint(b, uint64(c.size))
		b = binary.AppendUvarint(b, uint64(c.inner))
		b = binary.AppendUvarint(b, uint64(c.member-l.member))
		l.member = c.member
		zeros := byte(0)
		if c.zeros {
			zeros = 1
		}
		b = append(b, zeros)
	}
	l.rec = b
	l.pages.appendWhole(b)
	l.n++
	l.chunks += len(chunks)
}

func (l *entryLog) owner(name string) uint64 {
	id, ok := l.ownerIDs[name]
	if !ok {
		if l.ownerIDs == nil {
			l.ownerIDs = make(map[string]uint64)
		}
		id = uint64(len(l.owners))
		l.owners = append(l.owners, name)
		l.ownerIDs[name] = id
	}
	return id
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendTime records t as its nanoseconds plus one (zero for the zero
// Time) and its Unix seconds.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(t.Nanosecond())+1)
	return binary.AppendVarint(b, t.Unix())
}

// index is a finished layout: the entry log, the blob offset of every
// member, the digest of every chunk in the order they were recorded, and
// where the last member ends.
type index struct {
	log     entryLog
	offsets paged[int64]
	sums    paged[[32]byte]
	end     int64
}

// member returns the blob bounds of member m.
func (x *index) member(m int) (offset, end int64) {
	end = x.end
	if m+1 < x.offsets.n {
		end = x.offsets.at(m + 1)
	}
	return x.offsets.at(m), end
}

// logEntry is a decoded record: the entry, with its chunks resolved, and
// the tar's spelling of its link target where it differs.
type logEntry struct {
	toc.Entry
	tarLink string
}

var errCorruptLog = errors.New("writer: internal error: entry log does not decode")

// each decodes every record in order into e, which is reused unless
// fresh is set, and calls fn.
func (x *index) each(fresh bool, fn func(e *logEntry) error) error {
	var name []byte
	chunk := 0
	e := new(logEntry)
	var d logDecoder
	for _, page := range x.log.pages.pages {
		d.b = page
		for len(d.b) > 0 {
			if fresh {
				e = new(logEntry)
			}
			if err := d.entry(e, &name, x, &chunk); err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// logDecoder reads records; a malformed one sets err, which only a bug in
// the writer can cause.
type logDecoder struct {
	b      []byte
	err    error
	prev   logAttrs
	member int
}

func (d *logDecoder) uvarint() uint64 { return readVarint(d, binary.Uvarint) }
func (d *logDecoder) varint() int64   { return readVarint(d, binary.Varint) }

// readVarint decodes one varint with read, as uvarint and varint do.
func readVarint[T uint64 | int64](d *logDecoder, read func([]byte) (T, int)) T {
	v, n := read(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *logDecoder) bytes(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// fail marks the log corrupt and stops decoding it.
func (d *logDecoder) fail() { d.err, d.b = errCorruptLog, nil }

func (d *logDecoder) byte() byte {
	if b := d.bytes(1); len(b) == 1 {
		return b[0]
	}
	return 0
}

func (d *logDecoder) string() string { return string(d.bytes(d.uvarint())) }

func (d *logDecoder) time() time.Time {
	ns := d.uvarint()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(d.varint(), int64(ns-1)).UTC()
}

// entry decodes the next record into e; name is the previous record's
// name and chunk the number of chunks decoded so far, both updated.
func (d *logDecoder) entry(e *logEntry, name *[]byte, x *index, chunk *int) error {
	*e = logEntry{Entry: toc.Entry{Chunks: e.Chunks[:0]}}
	e.Type = toc.EntryType(d.byte())
	shared := d.uvarint()
	if shared > uint64(len(*name)) {
		return errCorruptLog
	}
	*name = append((*name)[:shared], d.bytes(d.uvarint())...)
	e.Name = string(*name)
	e.TarName = d.string()
	e.LinkName = d.string()
	e.tarLink = d.string()
	e.Size = d.varint()
	if d.byte() == 1 {
		a := &d.prev
		a.mode, a.uid, a.gid = d.varint(), int(d.varint()), int(d.varint())
		a.dev = [2]int64{d.varint(), d.varint()}
		a.owners = [2]uint64{d.uvarint(), d.uvarint()}
		a.times = [3]time.Time{d.time(), d.time(), d.time()}
		if a.owners[0] >= uint64(len(x.log.owners)) || a.owners[1] >= uint64(len(x.log.owners)) {
			return errCorruptLog
		}
	}
	a := &d.prev
	e.Mode, e.UID, e.GID, e.DevMajor, e.DevMinor = a.mode, a.uid, a.gid, a.dev[0], a.dev[1]
	e.UserName, e.GroupName = x.log.owners[a.owners[0]], x.log.owners[a.owners[1]]
	e.ModTime, e.AccessTime, e.ChangeTime = a.times[0], a.times[1], a.times[2]
	if n := d.uvarint(); n > 0 {
		e.Xattrs = make(map[string]string, min(n, 64))
		for range n {
			k := d.string()
			e.Xattrs[k] = d.string()
		}
	}
	kind := d.byte()
	switch kind {
	case digestEmpty:
		e.Digest = digest.SHA256.FromBytes(nil)
	case digestStored:
		e.Digest = digest.NewDigestFromBytes(digest.SHA256, d.bytes(32))
	}
	var off int64
	for range d.uvarint() {
		c := toc.Chunk{Offset: off, Size: int64(d.uvarint()), InnerOffset: int64(d.uvarint())}
		d.member += int(d.uvarint())
		c.Zeros = d.byte() == 1
		if d.err != nil || d.member >= x.offsets.n || *chunk >= x.sums.n {
			return errCorruptLog
		}
		c.FrameOffset, c.FrameEnd = x.member(d.member)
		sum := x.sums.at(*chunk)
		c.Digest = digest.NewDigestFromBytes(digest.SHA256, sum[:])
		*chunk++
		e.Chunks = append(e.Chunks, c)
		off += c.Size
	}
	if kind == digestOneChunk && len(e.Chunks) == 1 {
		e.Digest = e.Chunks[0].Digest
	}
	return d.err
}

// paged is a slice in pages of pageLen elements, which unlike a slice
// never copies itself (and so never holds two copies) as it grows: the
// writer keeps a chunk digest and a member offset for every small file.
type paged[T any] struct {
	pages [][]T
	n     int
}

const pageLen = 4096

func (p *paged[T]) add(v T) {
	if p.n%pageLen == 0 {
		p.pages = append(p.pages, make([]T, 0, pageLen))
	}
	last := len(p.pages) - 1
	p.pages[last] = append(p.pages[last], v)
	p.n++
}

func (p *paged[T]) at(i int) T { return p.pages[i/pageLen][i%pageLen] }

// pagedBytes is a byte buffer in pages of bytesPage bytes, which unlike a
// bytes.Buffer never copies itself (and so never holds two copies) as it
// grows: the writer's index and tar-split grow to tens of megabytes.
type pagedBytes struct{ pages [][]byte }

const bytesPage = 1 << 20

// Write appends p, filling the last page before starting another.
func (b *pagedBytes) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		last := b.last(1)
		k := copy(last[len(last):cap(last)], p)
		b.pages[len(b.pages)-1] = last[:len(last)+k]
		p = p[k:]
	}
	return n, nil
}

// appendWhole appends p to one page, starting a new one (as large as p
// if need be) if the last cannot take all of it.
func (b *pagedBytes) appendWhole(p []byte) {
	last := b.last(len(p))
	b.pages[len(b.pages)-1] = append(last, p...)
}

// last returns the last page, first starting a new one if it has room
// for less than n bytes.
func (b *pagedBytes) last(n int) []byte {
	if k := len(b.pages); k > 0 && cap(b.pages[k-1])-len(b.pages[k-1]) >= n {
		return b.pages[k-1]
	}
	b.pages = append(b.pages, make([]byte, 0, max(bytesPage, n)))
	return b.pages[len(b.pages)-1]
}

// WriteTo writes the pages to w in order.
func (b *pagedBytes) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, p := range b.pages {
		k, err := w.Write(p)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
