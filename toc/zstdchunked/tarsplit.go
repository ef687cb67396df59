package zstdchunked

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
	"path/filepath"
	"slices"

	"github.com/lazylayer/lazylayer/internal/tarcheck"
	"github.com/lazylayer/lazylayer/internal/tocjson"

	"github.com/lazylayer/lazylayer/internal/iox"
	"github.com/lazylayer/lazylayer/internal/limits"

	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/tar/storage"
)

// Tar-split limits. Every one of them is checked before the bytes it
// bounds are held or processed.
const (
	// DefaultMaxTarSplitSize is the default limit on the uncompressed size
	// of a tar-split stream: 1 GiB. The stream is processed record by
	// record, so the limit bounds work, not memory. CheckTarSplit also
	// holds a stream to what its TOC's entries can need (see
	// MaxTarSplitSizeFor).
	DefaultMaxTarSplitSize = 1 << 30

	// DefaultMaxTarSplitRecordSize is the default limit on one tar-split
	// record (one JSON line): 4 MiB. A record holds an entry's headers,
	// with the previous entry's padding, or a stretch of the end of the
	// archive, base64-encoded; tar-split writes the latter in pieces of
	// 1 MiB.
	DefaultMaxTarSplitRecordSize = 4 << 20

	// DefaultMaxTarHeaderSize is the default limit on one entry's tar
	// headers, as CheckTarSplit reads them: its header block and the PAX
	// and GNU long-name headers before it, their data included: 1 MiB,
	// the cap archive/tar puts on PAX and long-name data.
	DefaultMaxTarHeaderSize = 1 << 20
)

// Errors of the tar-split functions.
var (
	// ErrInvalidTarSplit means a tar-split stream is malformed or does not
	// have the digest its TOC pins.
	ErrInvalidTarSplit = errors.New("invalid tar-split")
	// ErrTarSplitMismatch means a tar-split stream disagrees with its TOC
	// (entries, types, modes, ids, sizes, times, order), would rebuild a
	// tar stream that a tar reader sees more in than the TOC lists, or
	// that file contents replayed into it disagree with its checksums.
	ErrTarSplitMismatch = errors.New("tar-split does not match")
	// ErrTarSplitTooLarge means a tar-split stream, one of its records or
	// one entry's tar headers exceed a limit.
	ErrTarSplitTooLarge = errors.New("tar-split too large")
)

// A TarSplitOption configures a tar-split reader.
type TarSplitOption func(*tarSplitConfig)

type tarSplitConfig struct{ maxSize, maxRecord, maxHeader int64 }

// WithMaxTarSplitSize limits the uncompressed size of a tar-split stream
// to n bytes; reading past it fails with ErrTarSplitTooLarge. A value <= 0
// selects DefaultMaxTarSplitSize.
func WithMaxTarSplitSize(n int64) TarSplitOption {
	return func(c *tarSplitConfig) { c.maxSize = limits.Or(n, DefaultMaxTarSplitSize) }
}

// WithMaxTarSplitRecordSize limits one record of a tar-split stream to n
// bytes; a longer one fails with ErrTarSplitTooLarge before it is held
// whole. A value <= 0 selects DefaultMaxTarSplitRecordSize.
func WithMaxTarSplitRecordSize(n int64) TarSplitOption {
	return func(c *tarSplitConfig) { c.maxRecord = limits.Or(n, DefaultMaxTarSplitRecordSize) }
}

// WithMaxTarHeaderSize limits the tar headers of one entry that
// CheckTarSplit reads (see DefaultMaxTarHeaderSize) to n bytes, and at
// least one 512-byte block; more fail with ErrTarSplitTooLarge. A value
// <= 0 selects DefaultMaxTarHeaderSize.
func WithMaxTarHeaderSize(n int64) TarSplitOption {
	return func(c *tarSplitConfig) { c.maxHeader = max(limits.Or(n, DefaultMaxTarHeaderSize), tarcheck.BlockSize) }
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
	cfg   tarSplitConfig
	zr    *zstd.Decoder
	lr    *io.LimitedReader
	br    *bufio.Reader
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
			return nil, fmt.Errorf("toc: tar-split digest %q: %w: %w", untrusted.Short(string(want)), ErrInvalidTarSplit, err)
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
	cfg := tarSplitConfig{maxSize: DefaultMaxTarSplitSize, maxRecord: DefaultMaxTarSplitRecordSize, maxHeader: DefaultMaxTarHeaderSize}
	for _, o := range opts {
		o(&cfg)
	}
	zr, err := newZstdReader(r, cfg.maxSize)
	if err != nil {
		return nil, fmt.Errorf("toc: tar-split: %w", err)
	}
	lr := &io.LimitedReader{R: zr, N: cfg.maxSize + 1}
	return &TarSplitReader{cfg: cfg, zr: zr, lr: lr, br: bufio.NewReaderSize(lr, 64<<10)}, nil
}

// limit lowers the stream's size limit to n bytes, if that is lower.
func (r *TarSplitReader) limit(n int64) {
	if n < r.cfg.maxSize {
		r.lr.N -= r.cfg.maxSize - n
		r.cfg.maxSize = n
	}
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
		return nil, fmt.Errorf("toc: tar-split record %d: %w: %w", r.n, ErrInvalidTarSplit, untrusted.Err(err))
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
				r.n, untrusted.Short(string(e.name)), e.size, len(e.payload), ErrInvalidTarSplit)
		}
	default:
		return nil, fmt.Errorf("toc: tar-split record %d: unknown type %d: %w", r.n, e.typ, ErrInvalidTarSplit)
	}
	r.n++
	return e, nil
}

// readLine returns the next newline-terminated record, refusing records
// and streams over their limits. The line is valid until the next call.
func (r *TarSplitReader) readLine() ([]byte, error) {
	r.line = r.line[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		if err == nil && len(r.line) == 0 && int64(len(chunk)) <= r.cfg.maxRecord {
			return chunk, nil // the whole line is in br's buffer: no copy
		}
		if int64(len(r.line)+len(chunk)) > r.cfg.maxRecord {
			return nil, fmt.Errorf("toc: tar-split record %d exceeds the %d-byte limit: %w", r.n, r.cfg.maxRecord, ErrTarSplitTooLarge)
		}
		r.line = append(r.line, chunk...)
		switch {
		case err == nil:
			return r.line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case r.lr.N <= 0:
			return nil, fmt.Errorf("toc: tar-split exceeds the %d-byte limit: %w", r.cfg.maxSize, ErrTarSplitTooLarge)
		case err == io.EOF && len(r.line) == 0:
			return nil, io.EOF
		case err == io.EOF:
			return nil, fmt.Errorf("toc: tar-split record %d: truncated: %w", r.n, ErrInvalidTarSplit)
		default:
			return nil, fmt.Errorf("toc: tar-split: decompressing: %w: %w", ErrInvalidTarSplit, err)
		}
	}
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
		name, err := tocjson.CleanName(string(rec.name))
		if err != nil {
			return written, fmt.Errorf("toc: tar-split file %q: %w: %w", untrusted.Short(string(rec.name)), ErrInvalidTarSplit, err)
		}
		n, err := copyFileContents(w, crc, buf, name, rec.size, open)
		written += n
		if err != nil {
			return written, err
		}
		if got := crc.Sum(nil); !bytes.Equal(got, rec.payload) {
			return written, fmt.Errorf("toc: tar-split file %q: contents have CRC-64 %x, tar-split records %x: %w", untrusted.Short(name), got, rec.payload, ErrTarSplitMismatch)
		}
	}
}

// copyFileContents copies size bytes of the named file to w, hashing them
// into crc (which it resets first).
func copyFileContents(w io.Writer, crc hash.Hash64, buf []byte, name string, size int64, open func(string, int64) (io.ReadCloser, error)) (int64, error) {
	f, err := open(name, size)
	if err != nil {
		return 0, fmt.Errorf("toc: tar-split file %q: %w", untrusted.Short(name), err)
	}
	defer f.Close()
	crc.Reset()
	n, err := io.CopyBuffer(io.MultiWriter(w, crc), io.LimitReader(f, size), buf)
	if err != nil {
		return n, fmt.Errorf("toc: tar-split file %q: %w", untrusted.Short(name), err)
	}
	if n != size {
		return n, fmt.Errorf("toc: tar-split file %q: %d of %d bytes: %w", untrusted.Short(name), n, size, ErrTarSplitMismatch)
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
	compressed   iox.CountingWriter
	uncompressed iox.CountingWriter
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

// NewTarSplitWriter returns a writer that writes the compressed tar-split
// stream to w at the given zstd level and window (see NewFrameWriter; at
// level 10 and window 0 its bytes are containers/storage's).
func NewTarSplitWriter(w io.Writer, level, window int) (*TarSplitWriter, error) {
	t := &TarSplitWriter{digester: digest.Canonical.Digester()}
	t.compressed.W = io.MultiWriter(w, t.digester.Hash())
	zw, err := NewFrameWriter(&t.compressed, level, window)
	if err != nil {
		return nil, fmt.Errorf("toc: tar-split: %w", err)
	}
	t.zw = zw
	t.uncompressed.W = zw
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
		return fmt.Errorf("toc: tar-split: file %q: %w", untrusted.Short(name), err)
	}
	return nil
}

// Add records rec, a record as a TarSplitReader returns it: a segment or
// a file.
func (t *TarSplitWriter) Add(rec *TarSplitRecord) error {
	if rec.Type == TarSplitSegment {
		return t.AddSegment(rec.Payload)
	}
	return t.AddFile(rec.Name, rec.Size, rec.Payload)
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
	return t.compressed.N, t.uncompressed.N
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
