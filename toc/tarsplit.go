package toc

import (
	"bufio"
	"bytes"
	"container/heap"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/archive/tar"
	"github.com/vbatts/tar-split/tar/storage"
)

// Tar-split decoding limits.
const (
	// DefaultMaxTarSplitSize is the default limit on the uncompressed size
	// of a tar-split stream: 1 GiB. The stream is processed record by
	// record, so the limit bounds work, not memory.
	DefaultMaxTarSplitSize = 1 << 30

	// MaxTarSplitRecordSize is the largest tar-split record (one JSON line)
	// accepted. Records hold raw header blocks (PAX headers are capped at
	// 1 MiB by tar readers) or padding, base64-encoded.
	MaxTarSplitRecordSize = 4 << 20
)

// Errors of the tar-split functions.
var (
	// ErrInvalidTarSplit means a tar-split stream is malformed or does not
	// have the digest its TOC pins.
	ErrInvalidTarSplit = errors.New("invalid tar-split")
	// ErrTarSplitMismatch means a tar-split stream disagrees with its TOC
	// (entries, types, modes, ids, sizes, times, order), or file contents
	// replayed into it disagree with its checksums.
	ErrTarSplitMismatch = errors.New("tar-split does not match")
	// ErrTarSplitTooLarge means a tar-split stream exceeds its size limit.
	ErrTarSplitTooLarge = errors.New("tar-split too large")
)

// A TarSplitOption configures a tar-split reader.
type TarSplitOption func(*tarSplitConfig)

type tarSplitConfig struct{ maxSize int64 }

// WithMaxTarSplitSize limits the uncompressed size of a tar-split stream
// to n bytes; reading past it fails with ErrTarSplitTooLarge. A value <= 0
// selects DefaultMaxTarSplitSize.
func WithMaxTarSplitSize(n int64) TarSplitOption {
	return func(c *tarSplitConfig) { c.maxSize = positiveOr(n, DefaultMaxTarSplitSize) }
}

// TarSplitRecordType is the kind of a tar-split record.
type TarSplitRecordType uint8

const (
	// TarSplitFile stands for a tar entry's contents, which the stream does
	// not hold: Name, Size and the CRC-64 of the contents.
	TarSplitFile TarSplitRecordType = TarSplitRecordType(storage.FileType)
	// TarSplitSegment holds raw tar bytes: header blocks, padding, the
	// end-of-archive blocks.
	TarSplitSegment TarSplitRecordType = TarSplitRecordType(storage.SegmentType)
)

// TarSplitRecord is one record of a tar-split stream
// (github.com/vbatts/tar-split), the metadata that regenerates a tar
// stream byte for byte from its files' contents.
type TarSplitRecord struct {
	Type TarSplitRecordType
	// Name is a file record's tar header name, as the tar spells it.
	Name string
	// Size is a file record's content size.
	Size int64
	// Payload is a segment's raw bytes, or a file record's CRC-64 (ISO
	// polynomial, big-endian) of its contents; empty for an empty file.
	Payload []byte
}

// NewTarSplitCRC returns the checksum tar-split file records carry:
// CRC-64 with the ISO polynomial. Its Sum is a file record's Payload.
func NewTarSplitCRC() hash.Hash64 { return crc64.New(tarSplitCRCTable) }

var tarSplitCRCTable = crc64.MakeTable(crc64.ISO)

// TarSplitReader reads the records of a zstd-compressed tar-split stream,
// one at a time, in bounded memory. It is not safe for concurrent use.
type TarSplitReader struct {
	zr    *zstd.Decoder
	lr    *io.LimitedReader
	br    *bufio.Reader
	limit int64
	line  []byte // a record spanning more than br's buffer
	n     int    // records read
	dec   tarSplitDecoder
	entry tarSplitEntry
}

// NewTarSplitReader returns a reader of the tar-split stream compressed,
// the payload of a zstd:chunked blob's tar-split frame. If want is not
// empty, compressed must have that digest (the TOC's tarSplitDigest), or
// the error wraps ErrInvalidTarSplit: records are never yielded from
// unverified bytes. Close releases the decoder.
func NewTarSplitReader(compressed []byte, want digest.Digest, opts ...TarSplitOption) (*TarSplitReader, error) {
	if want != "" {
		if err := want.Validate(); err != nil {
			return nil, fmt.Errorf("toc: tar-split digest %q: %w: %w", want, ErrInvalidTarSplit, err)
		}
		if got := want.Algorithm().FromBytes(compressed); got != want {
			return nil, fmt.Errorf("toc: tar-split has digest %s, TOC pins %s: %w", got, want, ErrInvalidTarSplit)
		}
	}
	return NewTarSplitReaderFrom(bytes.NewReader(compressed), opts...)
}

// NewTarSplitReaderFrom returns a reader of the compressed tar-split
// stream that r delivers, for parsing a tar-split as it downloads. It
// verifies nothing: the caller must check the bytes r delivered against
// the digest the TOC pins before trusting any record. Close releases the
// decoder.
func NewTarSplitReaderFrom(r io.Reader, opts ...TarSplitOption) (*TarSplitReader, error) {
	cfg := tarSplitConfig{maxSize: DefaultMaxTarSplitSize}
	for _, o := range opts {
		o(&cfg)
	}
	zr, err := newZstdReader(r, cfg.maxSize)
	if err != nil {
		return nil, fmt.Errorf("toc: tar-split: %w", err)
	}
	lr := &io.LimitedReader{R: zr, N: cfg.maxSize + 1}
	return &TarSplitReader{zr: zr, lr: lr, br: bufio.NewReaderSize(lr, 64<<10), limit: cfg.maxSize}, nil
}

// Close releases the reader's resources. It always returns nil.
func (r *TarSplitReader) Close() error {
	r.zr.Close()
	return nil
}

// Next returns the next record, or io.EOF after the last one. Each record
// is freshly allocated; the caller may keep it.
func (r *TarSplitReader) Next() (*TarSplitRecord, error) {
	e, err := r.next()
	if err != nil {
		return nil, err
	}
	return &TarSplitRecord{Type: TarSplitRecordType(e.typ), Name: string(e.name), Size: e.size, Payload: bytes.Clone(e.payload)}, nil
}

// next returns the next record, checked as Next documents, or io.EOF. The
// record and its slices are only valid until the following call: they
// are the reader's buffers, reused from record to record.
func (r *TarSplitReader) next() (*tarSplitEntry, error) {
	line, err := r.readLine()
	if err != nil {
		return nil, err
	}
	e := &r.entry
	if err := r.dec.decode(line, e); err != nil {
		return nil, fmt.Errorf("toc: tar-split record %d: %w: %w", r.n, ErrInvalidTarSplit, err)
	}
	switch e.typ {
	case int64(TarSplitSegment):
	case int64(TarSplitFile):
		wantLen := 0
		if e.size > 0 {
			wantLen = crc64.Size
		}
		if e.size < 0 || len(e.payload) != wantLen {
			return nil, fmt.Errorf("toc: tar-split record %d: file %q of %d bytes with a %d-byte checksum: %w",
				r.n, e.name, e.size, len(e.payload), ErrInvalidTarSplit)
		}
	default:
		return nil, fmt.Errorf("toc: tar-split record %d: unknown type %d: %w", r.n, e.typ, ErrInvalidTarSplit)
	}
	r.n++
	return e, nil
}

// readLine returns the next newline-terminated record, refusing records
// over MaxTarSplitRecordSize and streams over the size limit. The line is
// valid until the next call.
func (r *TarSplitReader) readLine() ([]byte, error) {
	r.line = r.line[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		if err == nil && len(r.line) == 0 && len(chunk) <= MaxTarSplitRecordSize {
			return chunk, nil // the whole line is in br's buffer: no copy
		}
		if len(r.line)+len(chunk) > MaxTarSplitRecordSize {
			return nil, fmt.Errorf("toc: tar-split record %d exceeds %d bytes: %w", r.n, MaxTarSplitRecordSize, ErrInvalidTarSplit)
		}
		r.line = append(r.line, chunk...)
		switch {
		case err == nil:
			return r.line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case r.lr.N <= 0:
			return nil, fmt.Errorf("toc: tar-split exceeds the %d-byte limit: %w", r.limit, ErrTarSplitTooLarge)
		case err == io.EOF && len(r.line) == 0:
			return nil, io.EOF
		case err == io.EOF:
			return nil, fmt.Errorf("toc: tar-split record %d: truncated: %w", r.n, ErrInvalidTarSplit)
		default:
			return nil, fmt.Errorf("toc: tar-split: decompressing: %w: %w", ErrInvalidTarSplit, err)
		}
	}
}

// tarSplitHeaders walks a tar-split stream's tar headers: it parses each
// header out of its segment (skipping the previous entry's padding), and
// checks that the file record that must follow it agrees. fn is called
// with each header; the return value is the size of the tar stream the
// records describe.
func tarSplitHeaders(r *TarSplitReader, fn func(hdr *tar.Header) error) (int64, error) {
	var (
		size    int64
		padding int64       // padding still to skip before the next header
		pending *tar.Header // header awaiting its file record
		ended   bool        // the end-of-archive blocks have been seen
		headers tarHeaderReader
	)
	for {
		rec, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		if rec.typ == int64(TarSplitFile) {
			if pending == nil {
				return 0, fmt.Errorf("toc: tar-split record %d: file %q without a tar header: %w", r.n-1, rec.name, ErrTarSplitMismatch)
			}
			if string(rec.name) != pending.Name || rec.size != pending.Size {
				return 0, fmt.Errorf("toc: tar-split record %d: file %q of %d bytes follows header %q of %d bytes: %w",
					r.n-1, rec.name, rec.size, pending.Name, pending.Size, ErrTarSplitMismatch)
			}
			if err := fn(pending); err != nil {
				return 0, err
			}
			pending = nil
			size += rec.size
			continue
		}
		size += int64(len(rec.payload))
		if pending != nil {
			return 0, fmt.Errorf("toc: tar-split record %d: header %q is not followed by its file record: %w", r.n-1, pending.Name, ErrTarSplitMismatch)
		}
		seg := rec.payload
		skip := min(padding, int64(len(seg)))
		seg, padding = seg[skip:], padding-skip
		if ended || len(seg) == 0 {
			continue
		}
		hdr, pad, err := headers.read(seg)
		if err == io.EOF {
			ended = true
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("toc: tar-split record %d: tar header: %w: %w", r.n-1, ErrInvalidTarSplit, err)
		}
		if IsSparseTar(hdr.Typeflag, hdr.PAXRecords) {
			// The file record stands for the expanded contents, the
			// tar for its sparse map and the data it lists: the tar
			// the tar-split rebuilds (and the blob holds) extracts
			// to other contents than the TOC's.
			return 0, fmt.Errorf("toc: tar-split record %d: %q is a sparse file, which a tar-split cannot describe: %w", r.n-1, untrusted.Short(hdr.Name), ErrTarSplitMismatch)
		}
		pending, padding = hdr, pad
	}
	if pending != nil {
		return 0, fmt.Errorf("toc: tar-split ends after header %q without its file record: %w", pending.Name, ErrTarSplitMismatch)
	}
	return size, nil
}

// CheckTarSplit reads the tar-split stream r and checks it against t, the
// TOC that pins it: the tar headers must list the TOC's entries one for
// one, in order, with the same names (after cleaning), types, modes, uids
// and gids, sizes, link targets, device numbers, times and extended
// attributes, and each header's file record must follow it. Sparse files
// are refused: a tar-split cannot rebuild them. A reader must
// check this before trusting either, as containers/storage does. It
// returns the size of the tar stream the tar-split describes (the layer's
// uncompressed size). Disagreements wrap ErrTarSplitMismatch.
func CheckTarSplit(r *TarSplitReader, t *TOC) (tarSize int64, err error) {
	m := tarSplitMatcher{toc: t}
	size, err := tarSplitHeaders(r, m.match)
	if err != nil {
		return 0, err
	}
	return size, m.finish()
}

// TarSplitHeaders are the tar headers of a tar-split stream, in order,
// read apart from the TOC they must match (ReadTarSplitHeaders), so that a
// reader can parse the tar-split while it decodes the TOC.
type TarSplitHeaders struct {
	headers []*tar.Header
	size    int64
}

// ReadTarSplitHeaders reads the tar-split stream r to its end and keeps
// its tar headers, each checked to be followed by its file record. It
// fails with ErrTOCTooLarge beyond max headers (max <= 0 means
// DefaultMaxEntries), which no TOC could match.
func ReadTarSplitHeaders(r *TarSplitReader, max int) (*TarSplitHeaders, error) {
	if max <= 0 {
		max = DefaultMaxEntries
	}
	h := new(TarSplitHeaders)
	size, err := tarSplitHeaders(r, func(hdr *tar.Header) error {
		if len(h.headers) == max {
			return fmt.Errorf("toc: tar-split has more than %d entries: %w", max, ErrTOCTooLarge)
		}
		h.headers = append(h.headers, hdr)
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.size = size
	return h, nil
}

// TarSize returns the size of the tar stream the tar-split describes.
func (h *TarSplitHeaders) TarSize() int64 { return h.size }

// Check checks the headers against t exactly as CheckTarSplit checks a
// tar-split stream.
func (h *TarSplitHeaders) Check(t *TOC) error {
	m := tarSplitMatcher{toc: t}
	for _, hdr := range h.headers {
		if err := m.match(hdr); err != nil {
			return err
		}
	}
	return m.finish()
}

// tarSplitMatcher pairs tar-split headers, in order, with TOC entries.
type tarSplitMatcher struct {
	toc  *TOC
	next int
}

func (m *tarSplitMatcher) match(hdr *tar.Header) error {
	if m.next >= len(m.toc.Entries) {
		return fmt.Errorf("toc: tar-split entry %q is not in the TOC: %w", hdr.Name, ErrTarSplitMismatch)
	}
	e := m.toc.Entries[m.next]
	m.next++
	if err := compareTarHeader(e, hdr); err != nil {
		return fmt.Errorf("toc: tar-split entry %q, TOC entry %d %q: %w", hdr.Name, m.next-1, e.Name, err)
	}
	return nil
}

// finish reports TOC entries the tar-split did not list.
func (m *tarSplitMatcher) finish() error {
	if m.next < len(m.toc.Entries) {
		return fmt.Errorf("toc: TOC entry %d %q (and %d more) missing from the tar-split: %w", m.next, m.toc.Entries[m.next].Name, len(m.toc.Entries)-m.next-1, ErrTarSplitMismatch)
	}
	return nil
}

// compareTarHeader reports the first attribute in which e and hdr differ.
func compareTarHeader(e *Entry, hdr *tar.Header) error {
	mismatch := func(what string, toc, tarValue any) error {
		return fmt.Errorf("%s %v in the TOC, %v in the tar-split: %w", what, toc, tarValue, ErrTarSplitMismatch)
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return fmt.Errorf("tar name: %w: %w", ErrTarSplitMismatch, err)
	}
	if name != e.Name {
		return mismatch("name", e.Name, name)
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
	if e.Type == TypeHardlink {
		if link, err = cleanName(hdr.Linkname); err != nil {
			return fmt.Errorf("tar link name: %w: %w", ErrTarSplitMismatch, err)
		}
	}
	if link != e.LinkName {
		return mismatch("link name", e.LinkName, link)
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
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if xattrs == nil {
				xattrs = make(map[string]string)
			}
			xattrs[name] = v
		}
	}
	if !maps.Equal(xattrs, e.Xattrs) && len(xattrs)+len(e.Xattrs) > 0 {
		return mismatch("xattrs", e.Xattrs, xattrs)
	}
	return nil
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
func tarEntryType(flag byte) EntryType {
	switch flag {
	case tar.TypeReg, tar.TypeRegA:
		return TypeReg
	case tar.TypeLink:
		return TypeHardlink
	case tar.TypeSymlink:
		return TypeSymlink
	case tar.TypeChar:
		return TypeChar
	case tar.TypeBlock:
		return TypeBlock
	case tar.TypeDir:
		return TypeDir
	case tar.TypeFifo:
		return TypeFIFO
	}
	return 0
}

// WriteTarFromTarSplit regenerates, byte for byte, the tar stream a
// tar-split describes: segments are copied, and each file's contents are
// read through open, given the file's cleaned name (as in the model) and
// size. Exactly size bytes are copied from each opened file and checked
// against the record's CRC-64; a short file or a checksum mismatch is an
// error wrapping ErrTarSplitMismatch. Memory use is bounded by one record
// and a copy buffer, whatever the layer's size. It returns the number of
// bytes written.
func WriteTarFromTarSplit(w io.Writer, r *TarSplitReader, open func(name string, size int64) (io.ReadCloser, error)) (int64, error) {
	var written int64
	buf := make([]byte, 32<<10)
	crc := NewTarSplitCRC()
	for {
		rec, err := r.next()
		if err == io.EOF {
			return written, nil
		}
		if err != nil {
			return written, err
		}
		if rec.typ == int64(TarSplitSegment) {
			n, err := w.Write(rec.payload)
			written += int64(n)
			if err != nil {
				return written, err
			}
			continue
		}
		if rec.size == 0 {
			continue
		}
		name, err := cleanName(string(rec.name))
		if err != nil {
			return written, fmt.Errorf("toc: tar-split file %q: %w: %w", rec.name, ErrInvalidTarSplit, err)
		}
		n, err := copyFileContents(w, crc, buf, name, rec.size, open)
		written += n
		if err != nil {
			return written, err
		}
		if got := crc.Sum(nil); !bytes.Equal(got, rec.payload) {
			return written, fmt.Errorf("toc: tar-split file %q: contents have CRC-64 %x, tar-split records %x: %w", name, got, rec.payload, ErrTarSplitMismatch)
		}
	}
}

// copyFileContents copies size bytes of the named file to w, hashing them
// into crc (which it resets first).
func copyFileContents(w io.Writer, crc hash.Hash64, buf []byte, name string, size int64, open func(string, int64) (io.ReadCloser, error)) (int64, error) {
	f, err := open(name, size)
	if err != nil {
		return 0, fmt.Errorf("toc: tar-split file %q: %w", name, err)
	}
	defer f.Close()
	crc.Reset()
	n, err := io.CopyBuffer(io.MultiWriter(w, crc), io.LimitReader(f, size), buf)
	if err != nil {
		return n, fmt.Errorf("toc: tar-split file %q: %w", name, err)
	}
	if n != size {
		return n, fmt.Errorf("toc: tar-split file %q: %d of %d bytes: %w", name, n, size, ErrTarSplitMismatch)
	}
	return n, nil
}

// TarSplitWriter builds a zstd-compressed tar-split stream, record by
// record, exactly as tar-split's own disassembler (and so
// containers/storage) writes it. A writer streaming a tar feeds it each
// stretch of raw tar bytes it passes through (AddSegment: header blocks
// with the preceding padding, the end-of-archive blocks) and, after each
// header, the entry's file record (AddFile, also for entries without
// contents). It is not safe for concurrent use.
type TarSplitWriter struct {
	zw           io.WriteCloser
	compressed   countingWriter
	uncompressed countingWriter
	digester     digest.Digester
	pos          int // the next record's position
	// names holds the first 128 bits of the sha256 of each file record's
	// cleaned name, which tar-split allows only once; Close sorts them
	// to find a name given twice. tar-split's own packer keeps the
	// names themselves in a map: 70 MB for a layer of a million files,
	// against 16 MB.
	names [][][16]byte
	line  []byte
}

const namesPage = 4096

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// NewTarSplitWriter returns a writer that writes the compressed tar-split
// stream to w at the given zstd level and window (see NewZstdWriter; at
// level 10 and window 0 its bytes are containers/storage's).
func NewTarSplitWriter(w io.Writer, level, window int) (*TarSplitWriter, error) {
	t := &TarSplitWriter{digester: digest.Canonical.Digester()}
	t.compressed.w = io.MultiWriter(w, t.digester.Hash())
	zw, err := NewZstdWriter(&t.compressed, level, window)
	if err != nil {
		return nil, fmt.Errorf("toc: tar-split: %w", err)
	}
	t.zw = zw
	t.uncompressed.w = zw
	return t, nil
}

// AddSegment records raw tar bytes. Empty segments are not recorded.
func (t *TarSplitWriter) AddSegment(raw []byte) error {
	if len(raw) == 0 {
		return nil
	}
	if err := t.add(storage.Entry{Type: storage.SegmentType, Payload: raw}); err != nil {
		return fmt.Errorf("toc: tar-split: %w", err)
	}
	return nil
}

// AddFile records the contents of the entry whose header was just added:
// its tar name, size and CRC-64 (NewTarSplitCRC; nil for size 0). As in
// tar-split, a name may be recorded only once: Close reports a name given
// twice.
func (t *TarSplitWriter) AddFile(name string, size int64, crc []byte) error {
	e := storage.Entry{Type: storage.FileType, Size: size, Payload: crc}
	e.SetName(name)
	sum := sha256.Sum256([]byte(filepath.Clean(name)))
	if len(t.names) == 0 || len(t.names[len(t.names)-1]) == namesPage {
		t.names = append(t.names, make([][16]byte, 0, namesPage))
	}
	last := len(t.names) - 1
	t.names[last] = append(t.names[last], [16]byte(sum[:16]))
	if err := t.add(e); err != nil {
		return fmt.Errorf("toc: tar-split: file %q: %w", name, err)
	}
	return nil
}

// add writes e as one line of JSON, as tar-split's JSON packer does.
func (t *TarSplitWriter) add(e storage.Entry) error {
	e.Position = t.pos
	js, err := json.Marshal(&e)
	if err != nil {
		return err
	}
	t.line = append(append(t.line[:0], js...), '\n')
	if _, err := t.uncompressed.Write(t.line); err != nil {
		return err
	}
	t.pos++
	return nil
}

// Close flushes the compressed stream. It does not close the underlying
// writer. A name recorded twice by AddFile is an error wrapping
// storage.ErrDuplicatePath: the tar-split readers refuse such a stream.
func (t *TarSplitWriter) Close() error {
	if repeated(t.names) {
		return fmt.Errorf("toc: tar-split: two file records have the same name: %w", storage.ErrDuplicatePath)
	}
	t.names = nil
	if err := t.zw.Close(); err != nil {
		return fmt.Errorf("toc: tar-split: %w", err)
	}
	return nil
}

// Digest returns the digest of the compressed stream written so far: after
// Close, the TOC's tarSplitDigest.
func (t *TarSplitWriter) Digest() digest.Digest { return t.digester.Digest() }

// Size returns the compressed and uncompressed sizes of the stream written
// so far; after Close, the footer's and annotation's tar-split lengths.
func (t *TarSplitWriter) Size() (compressed, uncompressed int64) {
	return t.compressed.n, t.uncompressed.n
}

// repeated reports whether a key occurs twice in pages. It sorts each
// page and merges them, so it needs no copy of all the keys.
func repeated(pages [][][16]byte) bool {
	h := make(keyHeap, 0, len(pages))
	for _, p := range pages {
		slices.SortFunc(p, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
		if len(p) > 0 {
			h = append(h, p)
		}
	}
	heap.Init(&h)
	var prev [16]byte
	for first := true; len(h) > 0; first = false {
		k := h[0][0]
		if !first && k == prev {
			return true
		}
		prev = k
		if h[0] = h[0][1:]; len(h[0]) == 0 {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
	return false
}

// keyHeap orders sorted pages of keys by their first key.
type keyHeap [][][16]byte

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return bytes.Compare(h[i][0][:], h[j][0][:]) < 0 }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.([][16]byte)) }
func (h *keyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
