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
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lazylayer/lazylayer/toc/estargz"

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

	// prefetchMember is the member that starts with the
	// .prefetch.landmark, or -1.
	prefetchMember int
	noPrefetch     bool
}

// frames is the compressed unit being filled (a gzip member or a zstd
// frame), the count of those already handed to the pipeline, and the log
// of the entries laid out so far.
type frames struct {
	pipe    *pipeline
	cur     *member // the open unit
	members int     // units submitted; the open one has this index

	log entryLog
	// fileChunks are the chunks of the regular file being added.
	fileChunks []loggedChunk
	// fileHash is the running digest of a file of several chunks; the
	// digest of a file of one chunk is its chunk's.
	fileHash hash.Hash
}

func newFrames(pipe *pipeline) (frames, error) {
	cur, err := pipe.acquire()
	if err != nil {
		return frames{}, err
	}
	return frames{pipe: pipe, cur: cur, fileHash: sha256.New()}, nil
}

// addChunk records a chunk of e's content at offset off, which the open
// unit holds at raw[inner:inner+n]. Its digest, and the file's if it is
// the only chunk, are left to the pipeline's workers.
func (f *frames) addChunk(e *toc.Entry, off int64, inner, n int, zeros bool) {
	data := f.cur.raw[inner : inner+n]
	if int64(n) < e.Size {
		if off == 0 {
			f.fileHash.Reset()
		}
		f.fileHash.Write(data)
	}
	f.fileChunks = append(f.fileChunks, loggedChunk{size: int64(n), inner: int64(inner), member: f.members, zeros: zeros})
	f.cur.chunks = append(f.cur.chunks, span{off: inner, n: n})
}

// endEntry logs e with the chunks added since the last call; tarLink is
// as for entryLog.add.
func (f *frames) endEntry(e *toc.Entry, tarLink string) {
	if len(f.fileChunks) > 1 {
		e.Digest = digest.NewDigest(digest.SHA256, f.fileHash)
	}
	f.log.add(e, tarLink, f.fileChunks)
	f.fileChunks = f.fileChunks[:0]
}

// index returns the finished layout, once the pipeline is closed; end is
// where the last member ends. It shares nothing else of f, which a
// Result would otherwise keep alive with the pipeline's buffers.
func (f *frames) index(end int64) *index {
	return &index{log: f.log, offsets: f.pipe.offsets, sums: f.pipe.sums, end: end}
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
	f, err := newFrames(pipe)
	if err != nil {
		return nil, err
	}
	return &assembler{ctx: ctx, cfg: cfg, frames: f, prefetchMember: -1}, nil
}

// add appends one entry: its header, then its payload, each padded to the
// tar block size. A landmark passes newMember to start a member of its own.
func (a *assembler) add(rec *record, newMember bool) error {
	if err := a.ctx.Err(); err != nil {
		return err
	}
	if isSparse(rec.hdr) {
		// An eStargz tar is written anew: a sparse file becomes the
		// regular file tar readers extract, so that its chunks in the
		// TOC are bytes the tar holds.
		if err := expandSparse(rec); err != nil {
			return err
		}
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
	if e.Type == toc.TypeReg {
		if err := a.addContent(e, rec.payload, newMember); err != nil {
			return fmt.Errorf("writer: entry %q: %w", rec.hdr.Name, err)
		}
		a.pad()
	}
	switch e.Name {
	case toc.PrefetchLandmark:
		a.prefetchMember = a.fileChunks[0].member
	case toc.NoPrefetchLandmark:
		a.noPrefetch = true
	}
	a.endEntry(e, "")
	return nil
}

// addContent copies a regular file's content into members, one chunk at a
// time, and records each chunk's place.
func (a *assembler) addContent(e *toc.Entry, payload io.Reader, newMember bool) error {
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
		a.cur.raw = a.pipe.spares.grow(a.cur.raw, int(n))[:inner+int(n)]
		data := a.cur.raw[inner:]
		if _, err := io.ReadFull(payload, data); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading content at offset %d: %w", off, err)
		}
		a.addChunk(e, off, inner, int(n), false)
		a.pos += n
		off += n
		newMember = false
	}
	return nil
}

func (a *assembler) append(b []byte) {
	a.cur.raw = append(a.cur.raw, b...)
	a.pos += int64(len(b))
}

var zeroBlock [512]byte

func (a *assembler) pad() {
	a.append(zeroBlock[:blockPadding(a.pos)])
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
	return &record{hdr: h, raw: raw, payload: bytes.NewReader(estargz.LandmarkContents())}, nil
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
