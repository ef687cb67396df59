package reader

import (
	"encoding/hex"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// records is a layer's index in compact form: what it keeps of the
// toc.Entry values it was opened with, about a third of their size. A
// toc.Entry costs 256 bytes, plus its name, a 71-byte digest string and a
// 64-byte chunk; here an entry is a 96-byte record, its name is part of
// one string holding all names, a digest is 32 bytes, and a file's chunks
// sit in one array with everyone's. Entries are built from the records
// when asked for (see entry), once each.
type records struct {
	recs   []record
	chunks []chunkRecord
	// chunkDigests holds the digests of chunks that are not their file's
	// (see chunkRecord.digest).
	chunkDigests []digest.Digest
	owners       []owner
	// ext holds, by record, what few entries carry (see recordExt).
	ext map[int32]*recordExt

	// entries are the entries built so far, by record; see entry.
	entries []atomic.Pointer[toc.Entry]

	// whole is the TOC the layer was opened with, rebuilt once on
	// demand (see Layer.TOC).
	wholeOnce sync.Once
	whole     *toc.TOC
	meta      toc.TOC // the index's fields but Entries
}

// record is one entry of the index. Its name is the entry's Name, a piece
// of a string holding every name.
type record struct {
	name   string
	size   int64
	mtime  int64 // Unix seconds, if flags has recModTime
	digest [32]byte
	chunk  uint32 // the entry's first chunk in records.chunks
	nchunk uint32
	mode   uint32
	uid    uint32
	gid    uint32
	nsec   uint32 // of mtime
	owner  uint32 // index in records.owners
	typ    toc.EntryType
	flags  uint8
}

const (
	recDigest  = 1 << iota // digest holds the sha256 Digest
	recModTime             // mtime and nsec hold ModTime, in UTC
	recExt                 // records.ext holds more
)

// recordExt is what an entry carries beyond a record: link targets, and
// what is rare or out of a record's ranges.
type recordExt struct {
	tarName, linkName      string
	digest                 digest.Digest // when not sha256
	uid, gid               int           // when over 32 bits
	mode                   int64         // when over 32 bits, if bigMode
	bigMode                bool
	modTime                time.Time // when not in UTC
	accessTime, changeTime time.Time
	devMajor, devMinor     int64
	xattrs                 map[string]string
}

type owner struct{ user, group string }

// chunkRecord is one chunk of a regular file.
type chunkRecord struct {
	offset, size                       int64
	frameOffset, frameEnd, innerOffset int64
	// digest is 0 for none, fileDigest for the file's (a file of one
	// chunk), or else one more than the index in chunkDigests.
	digest uint32
	zeros  bool
}

const fileDigest = ^uint32(0)

const sha256Prefix = "sha256:"

// sha256Sum returns the bytes of a sha256 digest in canonical form.
func sha256Sum(d digest.Digest) (sum [32]byte, ok bool) {
	s := string(d)
	if len(s) != len(sha256Prefix)+64 || !strings.HasPrefix(s, sha256Prefix) {
		return sum, false
	}
	// Upper-case hex decodes too, but would not encode back the same.
	for i := range 32 {
		hi, ok1 := lowerHex(s[len(sha256Prefix)+2*i])
		lo, ok2 := lowerHex(s[len(sha256Prefix)+2*i+1])
		if !ok1 || !ok2 {
			return sum, false
		}
		sum[i] = hi<<4 | lo
	}
	return sum, true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func sha256String(sum [32]byte) digest.Digest {
	var b [len(sha256Prefix) + 64]byte
	copy(b[:], sha256Prefix)
	hex.Encode(b[len(sha256Prefix):], sum[:])
	return digest.Digest(b[:])
}

// packNames returns the names of entries as pieces of one string.
func packNames(entries []*toc.Entry) []string {
	n := 0
	for _, e := range entries {
		n += len(e.Name)
	}
	var b strings.Builder
	b.Grow(n)
	for _, e := range entries {
		b.WriteString(e.Name)
	}
	all := b.String()
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i], all = all[:len(e.Name)], all[len(e.Name):]
	}
	return names
}

// newRecords compacts t, whose entries' names names holds (see packNames).
func newRecords(t *toc.TOC, names []string) *records {
	r := &records{
		recs:    make([]record, len(t.Entries)),
		entries: make([]atomic.Pointer[toc.Entry], len(t.Entries)),
		ext:     make(map[int32]*recordExt),
		meta:    *t,
	}
	r.meta.Entries = nil
	nchunks := 0
	for _, e := range t.Entries {
		nchunks += len(e.Chunks)
	}
	r.chunks = make([]chunkRecord, 0, nchunks)
	owners := make(map[owner]uint32)
	var lastOwner uint32
	for i, e := range t.Entries {
		rec := &r.recs[i]
		rec.name, rec.typ, rec.size = names[i], e.Type, e.Size
		var x recordExt
		if rec.mode = uint32(e.Mode); int64(rec.mode) != e.Mode {
			x.mode, x.bigMode = e.Mode, true // the decoders refuse it; a hand-made index may not
		}
		if uint64(e.UID) <= 1<<32-1 && uint64(e.GID) <= 1<<32-1 {
			rec.uid, rec.gid = uint32(e.UID), uint32(e.GID)
		} else {
			x.uid, x.gid = e.UID, e.GID
		}
		// Entries mostly share their neighbour's owner.
		if o := (owner{e.UserName, e.GroupName}); len(r.owners) == 0 || r.owners[lastOwner] != o {
			idx, ok := owners[o]
			if !ok {
				idx = uint32(len(r.owners))
				owners[o] = idx
				r.owners = append(r.owners, o)
			}
			lastOwner = idx
		}
		rec.owner = lastOwner
		switch {
		case e.ModTime.IsZero():
		case e.ModTime.Location() == time.UTC:
			rec.mtime, rec.nsec = e.ModTime.Unix(), uint32(e.ModTime.Nanosecond())
			rec.flags |= recModTime
		default:
			x.modTime = e.ModTime
		}
		if e.Digest != "" {
			if sum, ok := sha256Sum(e.Digest); ok {
				rec.digest = sum
				rec.flags |= recDigest
			} else {
				x.digest = e.Digest
			}
		}
		rec.chunk, rec.nchunk = uint32(len(r.chunks)), uint32(len(e.Chunks))
		for _, c := range e.Chunks {
			cr := chunkRecord{
				offset: c.Offset, size: c.Size,
				frameOffset: c.FrameOffset, frameEnd: c.FrameEnd, innerOffset: c.InnerOffset,
				zeros: c.Zeros,
			}
			switch {
			case c.Digest == "":
			case c.Digest == e.Digest:
				cr.digest = fileDigest
			default:
				r.chunkDigests = append(r.chunkDigests, c.Digest)
				cr.digest = uint32(len(r.chunkDigests))
			}
			r.chunks = append(r.chunks, cr)
		}
		x.tarName, x.linkName = e.TarName, e.LinkName
		x.accessTime, x.changeTime = e.AccessTime, e.ChangeTime
		x.devMajor, x.devMinor, x.xattrs = e.DevMajor, e.DevMinor, e.Xattrs
		if x.tarName != "" || x.linkName != "" || x.digest != "" || x.uid != 0 || x.gid != 0 || x.bigMode ||
			!x.modTime.IsZero() || !x.accessTime.IsZero() || !x.changeTime.IsZero() ||
			x.devMajor != 0 || x.devMinor != 0 || x.xattrs != nil {
			ext := x
			r.ext[int32(i)] = &ext
			rec.flags |= recExt
		}
	}
	return r
}

// chunkRecord returns the record of ref's chunk.
func (r *records) chunkRecord(ref chunkRef) *chunkRecord {
	return &r.chunks[r.recs[ref.id].chunk+uint32(ref.index)]
}

// hasChunkDigest reports whether ref's chunk has a digest to match (see
// chunkDigest), without building its entry.
func (r *records) hasChunkDigest(ref chunkRef) bool {
	switch c := r.chunkRecord(ref); {
	case c.digest != 0:
		return true
	case r.recs[ref.id].nchunk != 1:
		return false
	case r.recs[ref.id].flags&recDigest != 0:
		return true
	default:
		x := r.extOf(ref.id)
		return x != nil && x.digest != ""
	}
}

// extOf returns the rest of record id, or nil.
func (r *records) extOf(id int32) *recordExt {
	if r.recs[id].flags&recExt == 0 {
		return nil
	}
	return r.ext[id]
}

// linkName returns the LinkName of record id.
func (r *records) linkName(id int32) string {
	if x := r.extOf(id); x != nil {
		return x.linkName
	}
	return ""
}

// fileMode returns the FileMode of record id.
func (r *records) fileMode(id int32) fs.FileMode {
	rec := &r.recs[id]
	e := toc.Entry{Type: rec.typ, Mode: int64(rec.mode)}
	if x := r.extOf(id); x != nil && x.bigMode {
		e.Mode = x.mode
	}
	return e.FileMode()
}

// modTime returns the ModTime of record id.
func (r *records) modTime(id int32) time.Time {
	rec := &r.recs[id]
	if rec.flags&recModTime != 0 {
		return time.Unix(rec.mtime, int64(rec.nsec)).UTC()
	}
	if x := r.extOf(id); x != nil {
		return x.modTime
	}
	return time.Time{}
}

// entry returns the entry of record id, built on first use. Every call
// returns the same entry, so the entry's identity can key state.
func (r *records) entry(id int32) *toc.Entry {
	if e := r.entries[id].Load(); e != nil {
		return e
	}
	e := r.build(id)
	if r.entries[id].CompareAndSwap(nil, e) {
		return e
	}
	return r.entries[id].Load()
}

// build builds the entry of record id.
func (r *records) build(id int32) *toc.Entry {
	rec := &r.recs[id]
	o := r.owners[rec.owner]
	e := &toc.Entry{
		Name: rec.name, Type: rec.typ, Size: rec.size, Mode: int64(rec.mode),
		UID: int(rec.uid), GID: int(rec.gid), UserName: o.user, GroupName: o.group,
		ModTime: r.modTime(id),
	}
	if rec.flags&recDigest != 0 {
		e.Digest = sha256String(rec.digest)
	}
	if x := r.extOf(id); x != nil {
		e.TarName, e.LinkName = x.tarName, x.linkName
		if x.digest != "" {
			e.Digest = x.digest
		}
		if x.uid != 0 || x.gid != 0 {
			e.UID, e.GID = x.uid, x.gid
		}
		if x.bigMode {
			e.Mode = x.mode
		}
		e.AccessTime, e.ChangeTime = x.accessTime, x.changeTime
		e.DevMajor, e.DevMinor, e.Xattrs = x.devMajor, x.devMinor, x.xattrs
	}
	if rec.nchunk > 0 {
		e.Chunks = make([]toc.Chunk, rec.nchunk)
		for k, c := range r.chunks[rec.chunk : rec.chunk+rec.nchunk] {
			e.Chunks[k] = toc.Chunk{
				Offset: c.offset, Size: c.size,
				FrameOffset: c.frameOffset, FrameEnd: c.frameEnd, InnerOffset: c.innerOffset,
				Zeros: c.zeros,
			}
			switch c.digest {
			case 0:
			case fileDigest:
				e.Chunks[k].Digest = e.Digest
			default:
				e.Chunks[k].Digest = r.chunkDigests[c.digest-1]
			}
		}
	}
	return e
}

// toc returns the whole index, built on first use.
func (r *records) toc() *toc.TOC {
	r.wholeOnce.Do(func() {
		t := r.meta
		t.Entries = make([]*toc.Entry, len(r.recs))
		for i := range t.Entries {
			t.Entries[i] = r.entry(int32(i))
		}
		r.whole = &t
	})
	return r.whole
}
