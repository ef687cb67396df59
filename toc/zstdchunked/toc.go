package zstdchunked

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/toc"

	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
)

// zstdChunkedTOC is the zstd:chunked TOC ("manifest") JSON document, as
// containers/storage writes it (pkg/chunked/internal/minimal.TOC).
type zstdChunkedTOC struct {
	Version        int                 `json:"version"`
	Entries        []*zstdChunkedEntry `json:"entries"`
	TarSplitDigest string              `json:"tarSplitDigest,omitempty"`
}

// zstdChunkedEntry is one TOC entry, fields in the order and spelling of
// containers/storage's FileMetadata, so that json.Marshal writes the same
// bytes.
type zstdChunkedEntry struct {
	Type        string            `json:"type"`
	Name        string            `json:"name"`
	LinkName    string            `json:"linkName,omitempty"`
	Mode        int64             `json:"mode,omitempty"`
	Size        int64             `json:"size,omitempty"`
	UID         int               `json:"uid,omitempty"`
	GID         int               `json:"gid,omitempty"`
	ModTime     *time.Time        `json:"modtime,omitempty"`
	AccessTime  *time.Time        `json:"accesstime,omitempty"`
	ChangeTime  *time.Time        `json:"changetime,omitempty"`
	DevMajor    int64             `json:"devMajor,omitempty"`
	DevMinor    int64             `json:"devMinor,omitempty"`
	Xattrs      map[string][]byte `json:"xattrs,omitempty"` // base64 strings on the wire, as []byte encodes
	Digest      string            `json:"digest,omitempty"`
	Offset      int64             `json:"offset,omitempty"`
	EndOffset   int64             `json:"endOffset,omitempty"`
	ChunkSize   int64             `json:"chunkSize,omitempty"`
	ChunkOffset int64             `json:"chunkOffset,omitempty"`
	ChunkDigest string            `json:"chunkDigest,omitempty"`
	ChunkType   string            `json:"chunkType,omitempty"`

	// The first zstd:chunked writer (estargz/zstdchunked) stores an eStargz
	// TOC; these are its fields that containers/storage lacks. They are
	// decoded, never encoded.
	InnerOffset int64  `json:"innerOffset,omitempty"`
	UserName    string `json:"userName,omitempty"`
	GroupName   string `json:"groupName,omitempty"`
}

const (
	zstdChunkedVersion = 1
	chunkTypeZeros     = "zeros"
	// maxZstdRatio bounds how many bytes zstd can expand one compressed
	// byte to: an RLE block turns 4 bytes into at most 128 KiB.
	maxZstdRatio = 128 << 10 / 4
	// maxZstdWindow caps the window a TOC or tar-split frame may declare
	// beyond the size limit itself, so that small limits still admit the
	// 8 MiB windows common encoders declare.
	maxZstdWindow = 32 << 20
)

// eStargz converts the entry, into dst, to the eStargz form whose decoder
// does the shared validation, and returns dst (nil for a nil entry).
// Timestamps are handled by the caller.
func (je *zstdChunkedEntry) eStargz(dst *tocjson.Entry) *tocjson.Entry {
	if je == nil {
		return nil
	}
	*dst = tocjson.Entry{
		Name: je.Name, Type: je.Type, Size: je.Size, LinkName: je.LinkName, Mode: je.Mode,
		UID: je.UID, GID: je.GID, UserName: je.UserName, GroupName: je.GroupName,
		Offset: je.Offset, InnerOffset: je.InnerOffset, DevMajor: je.DevMajor, DevMinor: je.DevMinor,
		Xattrs: je.Xattrs, Digest: je.Digest,
		ChunkOffset: je.ChunkOffset, ChunkSize: je.ChunkSize, ChunkDigest: je.ChunkDigest,
	}
	return dst
}

// Marshal encodes t as zstd:chunked TOC JSON, byte for byte as
// containers/storage does: compact JSON, entries in order. tarSplitDigest
// is the digest of the compressed tar-split stream ("" for none).
//
// A regular file with one chunk is one "reg" entry whose offset and
// endOffset delimit the chunk's frame; chunk fields are written only for
// files of two or more chunks, as a "reg" entry (first chunk, endOffset
// after the last frame) followed by one "chunk" entry per further chunk.
// Zeros chunks get chunkType "zeros". Times are written in UTC with their
// full precision; user and group names are not written.
//
// Names and link names are written as given. containers/storage compares
// them byte for byte with the tar-split's headers, so a writer that
// produces a layer must pass the names exactly as its tar spells them
// (e.g. "./etc/" rather than the model's cleaned "etc").
//
// zstd:chunked cannot express chunks that share a frame: a chunk with a
// non-zero InnerOffset is an error wrapping ErrInvalidTOC.
func Marshal(t *toc.TOC, tarSplitDigest digest.Digest) ([]byte, error) {
	var b bytes.Buffer
	if err := tocjson.EncodeAll(NewEncoder(&b, tarSplitDigest), t.Entries); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Encoder writes zstd:chunked TOC JSON one entry at a time:
// the bytes Marshal returns for the same entries, without the
// TOC or its JSON in memory. A writer of a layer of a million files
// streams its index through the compressor this way.
type Encoder struct {
	doc            tocjson.DocumentWriter
	tarSplitDigest digest.Digest
	scratch        []zstdChunkedEntry
}

// NewEncoder returns an encoder that writes to w a TOC that
// pins tarSplitDigest, the digest of the compressed tar-split ("" for
// none).
func NewEncoder(w io.Writer, tarSplitDigest digest.Digest) *Encoder {
	// The framing of the document around its entries, as json.Marshal
	// writes it.
	doc := tocjson.DocumentWriter{W: w, Start: `{"version":1,"entries":[`, Sep: ",", End: "]", EmptyEnd: "]"}
	return &Encoder{doc: doc, tarSplitDigest: tarSplitDigest}
}

// Encode writes the next entry. An entry Marshal would refuse
// is an error wrapping ErrInvalidTOC, and so is every later call.
func (enc *Encoder) Encode(e *toc.Entry) error {
	if enc.doc.Err != nil {
		return enc.doc.Err
	}
	enc.scratch, enc.doc.Err = zstdChunkedEntries(enc.scratch[:0], e)
	if enc.doc.Err != nil {
		return enc.doc.Err
	}
	for i := range enc.scratch {
		js, err := json.Marshal(&enc.scratch[i])
		if err != nil {
			enc.doc.Err = fmt.Errorf("toc: zstd:chunked TOC: entry %q: %w: %w", e.Name, toc.ErrInvalidTOC, err)
			return enc.doc.Err
		}
		enc.doc.Next()
		enc.doc.Buf = append(enc.doc.Buf, js...)
	}
	return enc.doc.MaybeFlush()
}

// Close writes the end of the document. It does not close the underlying
// writer.
func (enc *Encoder) Close() error {
	rest := "}"
	if enc.tarSplitDigest != "" {
		js, err := json.Marshal(enc.tarSplitDigest.String())
		if err != nil {
			return fmt.Errorf("toc: zstd:chunked TOC: %w", err)
		}
		rest = `,"tarSplitDigest":` + string(js) + rest
	}
	return enc.doc.Close(rest)
}

// zstdChunkedEntries appends e's JSON entries to dst: the entry itself,
// then, for a file of several chunks, one "chunk" entry per further chunk.
func zstdChunkedEntries(dst []zstdChunkedEntry, e *toc.Entry) ([]zstdChunkedEntry, error) {
	if e.Name == "" {
		return dst, fmt.Errorf("toc: entry with empty name: %w", toc.ErrInvalidTOC)
	}
	if e.Type.String() == "invalid" {
		return dst, fmt.Errorf("toc: entry %q: unknown type %d: %w", e.Name, e.Type, toc.ErrInvalidTOC)
	}
	je := zstdChunkedEntry{
		Type: e.Type.String(), Name: e.Name, LinkName: e.LinkName, Mode: e.Mode,
		UID: e.UID, GID: e.GID,
		ModTime: utcTime(e.ModTime), AccessTime: utcTime(e.AccessTime), ChangeTime: utcTime(e.ChangeTime),
		DevMajor: e.DevMajor, DevMinor: e.DevMinor,
	}
	je.Xattrs = tocjson.EncodeXattrs(e.Xattrs)
	if e.Type != toc.TypeReg {
		return append(dst, je), nil
	}
	if err := tocjson.CheckChunkTiling(e); err != nil {
		return dst, err
	}
	je.Size, je.Digest = e.Size, e.Digest.String()
	if len(e.Chunks) == 0 {
		return append(dst, je), nil
	}
	for i, c := range e.Chunks {
		if c.InnerOffset != 0 {
			return dst, fmt.Errorf("toc: entry %q: chunk %d: innerOffset %d: zstd:chunked has one chunk per frame: %w", e.Name, i, c.InnerOffset, toc.ErrInvalidTOC)
		}
	}
	first, last := e.Chunks[0], e.Chunks[len(e.Chunks)-1]
	je.Offset, je.EndOffset = first.FrameOffset, last.FrameEnd
	if len(e.Chunks) == 1 {
		return append(dst, je), nil
	}
	for i, c := range e.Chunks {
		ce := je
		if i > 0 {
			ce = zstdChunkedEntry{Type: tocjson.ChunkType, Name: e.Name, ChunkOffset: c.Offset, Offset: c.FrameOffset}
		}
		ce.ChunkSize, ce.ChunkDigest = c.Size, c.Digest.String()
		if c.Zeros {
			ce.ChunkType = chunkTypeZeros
		}
		dst = append(dst, ce)
	}
	return dst, nil
}

// utcTime returns t in UTC, or nil for the zero time (which
// containers/storage omits).
func utcTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Unmarshal decodes zstd:chunked TOC JSON. tocOffset is the
// blob offset of the TOC frame's payload (Footer.TOCOffset): all file data
// must lie before that frame. It returns the TOC and the tar-split digest
// the TOC pins ("" when it has none). The TOC's Digest is left empty: it
// is the digest of the compressed TOC, which Decode sets.
//
// Both TOC flavours are accepted: containers/storage's, and the eStargz
// TOC that estargz/zstdchunked stores (with innerOffset, userName,
// groupName, no endOffset). Names are normalised as for eStargz and the
// same structural checks apply; a chunk's FrameEnd is the file's endOffset
// for its last chunk when given, else the next frame's offset. A file with
// a single chunk and no chunkDigest gets the file's Digest as the chunk's.
// Times keep their full precision, in UTC.
//
// Every structural problem yields an error wrapping ErrInvalidTOC (or
// ErrUnsupportedVersion, ErrTOCTooLarge); decoding never panics.
func Unmarshal(data []byte, tocOffset int64, opts ...toc.DecodeOption) (*toc.TOC, digest.Digest, error) {
	return unmarshalZstdChunked(data, tocOffset, toc.NewLimits(opts...), decodeZstdChunkedDocument)
}

// unmarshalZstdChunked is Unmarshal with the JSON decoder as a
// parameter, so that tests can compare the fast one with encoding/json.
func unmarshalZstdChunked(data []byte, tocOffset int64, cfg toc.Limits,
	decode func(data []byte, maxEntries int) (zstdChunkedDocument, error)) (*toc.TOC, digest.Digest, error) {
	if int64(len(data)) > cfg.MaxTOCSize {
		return nil, "", fmt.Errorf("toc: zstd:chunked TOC JSON is %d bytes, limit %d: %w", len(data), cfg.MaxTOCSize, toc.ErrTOCTooLarge)
	}
	if tocOffset < SkippableFrameHeaderSize {
		return nil, "", fmt.Errorf("toc: TOC offset %d leaves no room for its frame header: %w", tocOffset, toc.ErrInvalidTOC)
	}
	dataEnd := tocOffset - SkippableFrameHeaderSize
	doc, err := decode(data, cfg.MaxEntries)
	if errors.Is(err, tocjson.ErrTooManyEntries) {
		return nil, "", fmt.Errorf("toc: zstd:chunked TOC has more than %d entries: %w", cfg.MaxEntries, toc.ErrTOCTooLarge)
	}
	if err != nil {
		return nil, "", fmt.Errorf("toc: zstd:chunked TOC JSON: %w: %w", toc.ErrInvalidTOC, untrusted.Err(err))
	}
	if doc.Version == nil {
		return nil, "", fmt.Errorf("toc: zstd:chunked TOC has no version: %w", toc.ErrUnsupportedVersion)
	}
	if *doc.Version != zstdChunkedVersion {
		return nil, "", fmt.Errorf("toc: zstd:chunked TOC version %d: %w", *doc.Version, toc.ErrUnsupportedVersion)
	}
	if len(doc.Entries) > cfg.MaxEntries {
		return nil, "", fmt.Errorf("toc: zstd:chunked TOC has %d entries, limit %d: %w", len(doc.Entries), cfg.MaxEntries, toc.ErrTOCTooLarge)
	}
	var tarSplitDigest digest.Digest
	if doc.TarSplitDigest != "" {
		var err error
		if tarSplitDigest, err = digest.Parse(doc.TarSplitDigest); err != nil {
			return nil, "", fmt.Errorf("toc: zstd:chunked TOC: tarSplitDigest: %w: %w", toc.ErrInvalidTOC, err)
		}
	}

	// The eStargz decoder validates names, types, ids, chunk tiling and
	// frame order; what zstd:chunked adds is applied afterwards.
	d := tocjson.NewDecoder(&toc.TOC{Format: toc.FormatZstdChunked, Entries: make([]*toc.Entry, 0, len(doc.Entries))}, dataEnd, cfg)
	var converted tocjson.Entry // d.add keeps nothing of it
	for i, je := range doc.Entries {
		if err := d.Add(i, je.eStargz(&converted)); err != nil {
			return nil, "", err
		}
	}
	if err := d.CloseFile(); err != nil {
		return nil, "", err
	}
	if err := d.CheckFrameOrder(); err != nil {
		return nil, "", err
	}
	d.SetFrameEnds()
	t := d.TOC
	t.ChunkSize = 0 // zstd:chunked chunks are content-defined; there is no maximum to record
	if err := applyZstdChunkedFields(t, doc.Entries, dataEnd); err != nil {
		return nil, "", err
	}
	for _, e := range t.Entries {
		switch {
		case e.Name == toc.PrefetchLandmark && t.PrefetchEnd == 0 && len(e.Chunks) > 0:
			t.PrefetchEnd = e.Chunks[0].FrameOffset
		case e.Name == toc.NoPrefetchLandmark:
			t.NoPrefetch = true
		}
	}
	return t, tarSplitDigest, nil
}

// applyZstdChunkedFields walks the JSON entries alongside the decoded
// model (one model entry per non-chunk JSON entry, one chunk per JSON
// entry carrying data) and applies timestamps, endOffset and chunkType.
func applyZstdChunkedFields(t *toc.TOC, entries []*zstdChunkedEntry, dataEnd int64) error {
	var e *toc.Entry
	next, chunk := 0, 0
	for i, je := range entries {
		if je.Type != tocjson.ChunkType {
			e = t.Entries[next]
			next++
			chunk = 0
			if err := setZstdChunkedTimes(e, je); err != nil {
				return fmt.Errorf("toc: entry %d %q: %w", i, untrusted.Short(je.Name), err)
			}
			if len(e.Chunks) == 1 && e.Chunks[0].Digest == "" {
				e.Chunks[0].Digest = e.Digest
			}
			if je.EndOffset != 0 && len(e.Chunks) > 0 {
				c := &e.Chunks[len(e.Chunks)-1]
				if je.EndOffset <= c.FrameOffset || je.EndOffset > dataEnd {
					return fmt.Errorf("toc: entry %d %q: endOffset %d outside (%d, %d]: %w", i, untrusted.Short(je.Name), je.EndOffset, c.FrameOffset, dataEnd, toc.ErrInvalidTOC)
				}
				c.FrameEnd = je.EndOffset
			}
		} else {
			chunk++
		}
		if len(e.Chunks) == 0 {
			if je.ChunkType != "" {
				return fmt.Errorf("toc: entry %d %q: chunkType on an entry without data: %w", i, untrusted.Short(je.Name), toc.ErrInvalidTOC)
			}
			continue
		}
		c := &e.Chunks[chunk]
		switch je.ChunkType {
		case "":
		case chunkTypeZeros:
			c.Zeros = true
		default:
			return fmt.Errorf("toc: entry %d %q: unknown chunkType %q: %w", i, untrusted.Short(je.Name), untrusted.Short(je.ChunkType), toc.ErrInvalidTOC)
		}
	}
	for _, e := range t.Entries {
		for i, c := range e.Chunks {
			frameLen := c.FrameEnd - c.FrameOffset
			if frameLen > math.MaxInt64/maxZstdRatio {
				continue // no int64 amount of data could exceed the bound
			}
			if limit := frameLen * maxZstdRatio; c.InnerOffset > limit || c.Size > limit-c.InnerOffset {
				return fmt.Errorf("toc: entry %q: chunk %d: %d bytes at innerOffset %d cannot come from a %d-byte zstd frame: %w",
					untrusted.Short(e.Name), i, c.Size, c.InnerOffset, frameLen, toc.ErrInvalidTOC)
			}
		}
	}
	return nil
}

// setZstdChunkedTimes copies an entry's timestamps, which must be
// representable in RFC 3339 so that they encode back.
func setZstdChunkedTimes(e *toc.Entry, je *zstdChunkedEntry) error {
	for _, tt := range []struct {
		name string
		src  *time.Time
		dst  *time.Time
	}{{"modtime", je.ModTime, &e.ModTime}, {"accesstime", je.AccessTime, &e.AccessTime}, {"changetime", je.ChangeTime, &e.ChangeTime}} {
		if tt.src == nil {
			continue
		}
		u := tt.src.UTC()
		if u.Year() < 0 || u.Year() > 9999 {
			return fmt.Errorf("%s %v out of range: %w", tt.name, u, toc.ErrInvalidTOC)
		}
		*tt.dst = u
	}
	return nil
}

// newZstdReader returns a synchronous zstd decoder (no goroutines) for
// metadata frames limited to limit decompressed bytes.
func newZstdReader(r io.Reader, limit int64) (*zstd.Decoder, error) {
	return zstd.NewReader(r, zstdDecoderOptions(limit)...)
}

// zstdDecoderOptions configures a synchronous decoder for metadata frames
// limited to limit decompressed bytes.
func zstdDecoderOptions(limit int64) []zstd.DOption {
	return []zstd.DOption{
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(uint64(min(max(limit, maxZstdWindow), zstd.MaxWindowSize))),
	}
}

// DecompressTOC decompresses a zstd:chunked TOC frame's
// payload. uncompressedLength is the length the footer or annotation
// records (0 if unknown); a TOC of another length is an error wrapping
// ErrInvalidTOC. No more than the WithMaxTOCSize limit (plus one byte) is
// ever decompressed; a larger TOC is an error wrapping ErrTOCTooLarge.
func DecompressTOC(compressed []byte, uncompressedLength int64, opts ...toc.DecodeOption) ([]byte, error) {
	cfg := toc.NewLimits(opts...)
	if uncompressedLength > cfg.MaxTOCSize {
		return nil, fmt.Errorf("toc: zstd:chunked TOC of %d bytes, limit %d: %w", uncompressedLength, cfg.MaxTOCSize, toc.ErrTOCTooLarge)
	}
	if uncompressedLength > 0 {
		return decompressZstdChunkedTOCWhole(compressed, uncompressedLength, cfg.MaxTOCSize)
	}
	zr, err := newZstdReader(bytes.NewReader(compressed), cfg.MaxTOCSize)
	if err != nil {
		return nil, fmt.Errorf("toc: zstd:chunked TOC: %w", err)
	}
	defer zr.Close()
	var buf bytes.Buffer
	buf.Grow(int(min(int64(len(compressed))*maxZstdRatio, 1<<20)))
	if _, err := buf.ReadFrom(io.LimitReader(zr, cfg.MaxTOCSize+1)); err != nil {
		return nil, fmt.Errorf("toc: zstd:chunked TOC: decompressing: %w: %w", toc.ErrInvalidTOC, err)
	}
	if int64(buf.Len()) > cfg.MaxTOCSize {
		return nil, fmt.Errorf("toc: zstd:chunked TOC exceeds the %d-byte limit: %w", cfg.MaxTOCSize, toc.ErrTOCTooLarge)
	}
	return buf.Bytes(), nil
}

// decompressZstdChunkedTOCWhole decompresses a TOC of known length in one
// piece, straight into a buffer of that length: the streaming decoder
// would allocate a ring of the frame's window (often 8 MiB) and the
// buffer would regrow several times. Output beyond the length is an
// error, so no more than length bytes are ever decompressed.
func decompressZstdChunkedTOCWhole(compressed []byte, length, limit int64) ([]byte, error) {
	if length > int64(len(compressed))*maxZstdRatio {
		return nil, fmt.Errorf("toc: zstd:chunked TOC of %d bytes cannot come from %d compressed bytes: %w", length, len(compressed), toc.ErrInvalidTOC)
	}
	zd, err := zstd.NewReader(nil, append(zstdDecoderOptions(limit), zstd.WithDecodeAllCapLimit(true))...)
	if err != nil {
		return nil, fmt.Errorf("toc: zstd:chunked TOC: %w", err)
	}
	defer zd.Close()
	js, err := zd.DecodeAll(compressed, make([]byte, 0, length))
	switch {
	case errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return nil, fmt.Errorf("toc: zstd:chunked TOC exceeds the %d bytes the footer says: %w", length, toc.ErrInvalidTOC)
	case err != nil:
		return nil, fmt.Errorf("toc: zstd:chunked TOC: decompressing: %w: %w", toc.ErrInvalidTOC, err)
	case int64(len(js)) != length:
		return nil, fmt.Errorf("toc: zstd:chunked TOC is %d bytes, footer says %d: %w", len(js), length, toc.ErrInvalidTOC)
	}
	return js, nil
}

// Decode decodes a zstd:chunked TOC frame's payload (the
// compressed TOC) located by f, from a footer or from annotations: it
// decompresses it (DecompressTOC) and decodes the JSON
// (Unmarshal). The TOC's Digest is the digest of compressed,
// the value the manifest-checksum annotation pins; the caller compares
// them. The tar-split digest the TOC pins is returned too.
func Decode(compressed []byte, f toc.Footer, opts ...toc.DecodeOption) (*toc.TOC, digest.Digest, error) {
	js, err := DecompressTOC(compressed, f.TOCUncompressedLength, opts...)
	if err != nil {
		return nil, "", err
	}
	t, tarSplitDigest, err := Unmarshal(js, f.TOCOffset, opts...)
	if err != nil {
		return nil, "", err
	}
	t.Digest = digest.FromBytes(compressed)
	return t, tarSplitDigest, nil
}

// CompressFrame compresses data into one zstd frame at the given zstd
// level (1-22, as the zstd command line counts; containers/storage uses
// 10 for its TOC and tar-split), as zstd:chunked writers compress their
// TOC: at level 10 its bytes are containers/storage's.
func CompressFrame(data []byte, level int) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := NewFrameWriter(&buf, level, 0)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		zw.Close()
		return nil, fmt.Errorf("toc: zstd: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("toc: zstd: %w", err)
	}
	return buf.Bytes(), nil
}

// NewFrameWriter returns a writer that compresses what is written to it
// into one zstd frame on w, as CompressFrame does, for an index streamed
// rather than held (see Encoder). window is the frame's
// window size, a power of two from 1 KiB; 0 selects the encoder's default,
// which CompressFrame and containers/storage use. Close ends the frame; it
// does not close w.
//
// A TOC's or tar-split's repetitions are between neighbouring entries:
// with klauspost/compress's encoders a window of IndexWindow compresses
// both 7-14% smaller than the default 8 MiB, in less time and a
// sixtieth of the memory.
func NewFrameWriter(w io.Writer, level, window int) (io.WriteCloser, error) {
	opts := []zstd.EOption{zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)), zstd.WithEncoderConcurrency(1)}
	if window != 0 {
		opts = append(opts, zstd.WithWindowSize(window))
	}
	zw, err := zstd.NewWriter(w, opts...)
	if err != nil {
		return nil, fmt.Errorf("toc: zstd: %w", err)
	}
	return zw, nil
}

// IndexWindow is the zstd window that suits a compressed TOC or
// tar-split (see NewFrameWriter).
const IndexWindow = 128 << 10
