package writer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// assembler lays the output tar stream out into members and describes it
// in TOC entries. The layout is eStargz's: a member starts at the blob's
// start, at every chunk of a non-empty regular file (unless a minimum chunk
// size lets small files share one) and at every landmark; headers go into
// whichever member is open. It depends only on the input and the options
// that shape the layout, never on timing, so the output is deterministic.
type assembler struct {
	ctx context.Context
	cfg *config
	frames
	pos int64 // offset in the uncompressed output stream

	entries  []*toc.Entry
	refs     []chunkRef
	fileHash hash.Hash
}

// chunkRef remembers which member holds a chunk: the member's blob offset
// is known only once everything before it is compressed.
type chunkRef struct {
	entry  *toc.Entry
	chunk  int
	member int
}

// frames is the compressed unit being filled (a gzip member or a zstd
// frame) and the count of those already handed to the pipeline.
type frames struct {
	pipe    *pipeline
	cur     *member // the open unit
	members int     // units submitted; the open one has this index
}

// next submits the open unit, unless it is empty, and opens a new one.
func (f *frames) next() error {
	if len(f.cur.raw) == 0 {
		return nil
	}
	f.pipe.submit(f.cur)
	f.members++
	cur, err := f.pipe.acquire()
	f.cur = cur
	return err
}

// finish submits the last unit; no more may be opened.
func (f *frames) finish() {
	if len(f.cur.raw) > 0 {
		f.pipe.submit(f.cur)
		f.members++
	} else {
		f.pipe.release(f.cur)
	}
	f.cur = nil
}

func newAssembler(ctx context.Context, cfg *config, pipe *pipeline) (*assembler, error) {
	cur, err := pipe.acquire()
	if err != nil {
		return nil, err
	}
	return &assembler{ctx: ctx, cfg: cfg, frames: frames{pipe: pipe, cur: cur}, fileHash: sha256.New()}, nil
}

// add appends one entry: its header, then its payload, each padded to the
// tar block size. A landmark passes newMember to start a member of its own.
func (a *assembler) add(rec *record, newMember bool) error {
	if err := a.ctx.Err(); err != nil {
		return err
	}
	e, err := tocEntry(rec.hdr)
	if err != nil {
		return err
	}
	if len(a.cur.raw) > 0 && len(a.cur.raw)+len(rec.raw) > a.cfg.memberLimit() {
		if err := a.next(); err != nil {
			return err
		}
	}
	a.append(rec.raw)
	a.pad()
	if e == nil {
		return nil
	}
	a.entries = append(a.entries, e)
	if e.Type != toc.TypeReg {
		return nil
	}
	if err := a.addContent(e, rec.payload, newMember); err != nil {
		return fmt.Errorf("writer: entry %q: %w", rec.hdr.Name, err)
	}
	a.pad()
	return nil
}

// addContent copies a regular file's content into members, one chunk at a
// time, and records each chunk's place and digest.
func (a *assembler) addContent(e *toc.Entry, payload io.Reader, newMember bool) error {
	a.fileHash.Reset()
	for off := int64(0); off < e.Size; {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		n := min(a.cfg.chunkSize, e.Size-off)
		if newMember || a.cfg.minChunkSize == 0 || int64(len(a.cur.raw)) >= a.cfg.minChunkSize {
			if err := a.next(); err != nil {
				return err
			}
		}
		inner := len(a.cur.raw)
		a.cur.raw = slices.Grow(a.cur.raw, int(n))[:inner+int(n)]
		data := a.cur.raw[inner:]
		if _, err := io.ReadFull(payload, data); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading content at offset %d: %w", off, err)
		}
		e.Chunks = append(e.Chunks, toc.Chunk{
			Offset:      off,
			Size:        n,
			Digest:      hashChunk(a.fileHash, data, off == 0),
			InnerOffset: int64(inner),
		})
		a.refs = append(a.refs, chunkRef{entry: e, chunk: len(e.Chunks) - 1, member: a.members})
		a.pos += n
		off += n
		newMember = false
	}
	e.Digest = fileDigest(e, a.fileHash)
	return nil
}

// hashChunk returns the digest of a chunk of a file and adds the chunk to
// fileHash, the running hash of the whole file. A file's first chunk is
// hashed once for both: fileHash then holds exactly that chunk, and Sum
// leaves it able to take more. Most files are a single chunk, so this
// saves a sha256 pass over most of the content.
func hashChunk(fileHash hash.Hash, data []byte, first bool) digest.Digest {
	fileHash.Write(data)
	if first {
		return digest.NewDigest(digest.SHA256, fileHash)
	}
	sum := sha256.Sum256(data)
	return digest.NewDigestFromBytes(digest.SHA256, sum[:])
}

// fileDigest returns the digest of a regular file whose chunks went through
// hashChunk with fileHash.
func fileDigest(e *toc.Entry, fileHash hash.Hash) digest.Digest {
	switch len(e.Chunks) {
	case 0:
		return digest.SHA256.FromBytes(nil)
	case 1:
		return e.Chunks[0].Digest
	default:
		return digest.NewDigest(digest.SHA256, fileHash)
	}
}

func (a *assembler) append(b []byte) {
	a.cur.raw = append(a.cur.raw, b...)
	a.pos += int64(len(b))
}

var zeroBlock [512]byte

func (a *assembler) pad() {
	a.append(zeroBlock[:blockPadding(a.pos)])
}

// resolve fills in every chunk's member bounds once the members' blob
// offsets are known; end is where the last member ends.
func (a *assembler) resolve(offsets []int64, end int64) {
	resolveChunks(a.refs, offsets, end)
}

// resolveChunks fills in the frame bounds of the chunks refs point at:
// offsets[i] is the blob offset of member i, end where the last one ends.
func resolveChunks(refs []chunkRef, offsets []int64, end int64) {
	for _, r := range refs {
		c := &r.entry.Chunks[r.chunk]
		c.FrameOffset = offsets[r.member]
		c.FrameEnd = end
		if r.member+1 < len(offsets) {
			c.FrameEnd = offsets[r.member+1]
		}
	}
}

// landmark returns the record of a landmark entry (toc.PrefetchLandmark or
// toc.NoPrefetchLandmark): a one-byte regular file with mode 0 and no
// modification time.
func landmark(name string) (*record, error) {
	h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Size: 1, Format: tar.FormatUSTAR}
	raw, err := encodeHeader(h)
	if err != nil {
		return nil, fmt.Errorf("writer: landmark %q: %w", name, err)
	}
	return &record{hdr: h, raw: raw, payload: bytes.NewReader(toc.LandmarkContents())}, nil
}

// tocEntry describes a tar header as a TOC entry. A PAX global header
// describes no file: it yields nil.
func tocEntry(h *tar.Header) (*toc.Entry, error) {
	e := &toc.Entry{
		Name:       cleanName(h.Name),
		Mode:       h.Mode,
		UID:        h.Uid,
		GID:        h.Gid,
		UserName:   h.Uname,
		GroupName:  h.Gname,
		ModTime:    wholeSeconds(h.ModTime),
		AccessTime: wholeSeconds(h.AccessTime),
		ChangeTime: wholeSeconds(h.ChangeTime),
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeCont:
		e.Type = toc.TypeReg
		e.Size = h.Size
	case tar.TypeDir:
		e.Type = toc.TypeDir
	case tar.TypeSymlink:
		e.Type = toc.TypeSymlink
		e.LinkName = h.Linkname
	case tar.TypeLink:
		e.Type = toc.TypeHardlink
		e.LinkName = cleanName(h.Linkname)
	case tar.TypeChar:
		e.Type = toc.TypeChar
		e.DevMajor, e.DevMinor = h.Devmajor, h.Devminor
	case tar.TypeBlock:
		e.Type = toc.TypeBlock
		e.DevMajor, e.DevMinor = h.Devmajor, h.Devminor
	case tar.TypeFifo:
		e.Type = toc.TypeFIFO
	case tar.TypeXGlobalHeader:
		return nil, nil
	default:
		return nil, fmt.Errorf("writer: entry %q: tar type %q: %w", h.Name, h.Typeflag, ErrUnsupportedEntry)
	}
	// Readers refuse indexes that describe what no file system holds.
	if e.Name == "." && e.Type != toc.TypeDir {
		return nil, fmt.Errorf("writer: entry %q: the layer root must be a directory, not a %v: %w", h.Name, e.Type, ErrUnsupportedEntry)
	}
	if h.Mode < 0 || h.Mode > math.MaxUint32 || h.Uid < 0 || h.Gid < 0 || h.Devmajor < 0 || h.Devminor < 0 {
		return nil, fmt.Errorf("writer: entry %q: negative or out-of-range mode, owner or device: %w", h.Name, ErrUnsupportedEntry)
	}
	// TOCs are JSON, whose strings cannot carry invalid UTF-8.
	if !utf8.ValidString(h.Name) || !utf8.ValidString(h.Linkname) {
		return nil, fmt.Errorf("writer: entry %q: name or link target is not UTF-8: %w", h.Name, ErrUnsupportedEntry)
	}
	const xattrPrefix = "SCHILY.xattr."
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, xattrPrefix); ok {
			if !utf8.ValidString(name) {
				return nil, fmt.Errorf("writer: entry %q: extended attribute name %q is not UTF-8: %w", h.Name, name, ErrUnsupportedEntry)
			}
			if e.Xattrs == nil {
				e.Xattrs = make(map[string]string)
			}
			e.Xattrs[name] = v
		}
	}
	return e, nil
}

// wholeSeconds rounds t to the second in UTC, as eStargz records times.
func wholeSeconds(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Round(time.Second).UTC()
}
