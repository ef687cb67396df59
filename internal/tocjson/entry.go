package tocjson

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"strings"
	"time"

	"github.com/lazylayer/lazylayer/toc"

	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
)

const (
	ChunkType = "chunk"
	// maxDeflateRatio bounds how many bytes deflate can expand one
	// compressed byte to. A chunk claiming more data than its member could
	// ever hold is rejected instead of being decompressed.
	maxDeflateRatio = 1032
)

// estargzEntry is one TOC JSON entry, fields in the reference order.
type Entry struct {
	Name        string            `json:"name"`
	Type        string            `json:"type"`
	Size        int64             `json:"size,omitempty"`
	ModTime     string            `json:"modtime,omitempty"`
	LinkName    string            `json:"linkName,omitempty"`
	Mode        int64             `json:"mode,omitempty"`
	UID         int               `json:"uid,omitempty"`
	GID         int               `json:"gid,omitempty"`
	UserName    string            `json:"userName,omitempty"`
	GroupName   string            `json:"groupName,omitempty"`
	Offset      int64             `json:"offset,omitempty"`
	InnerOffset int64             `json:"innerOffset,omitempty"`
	DevMajor    int64             `json:"devMajor,omitempty"`
	DevMinor    int64             `json:"devMinor,omitempty"`
	Xattrs      map[string][]byte `json:"xattrs,omitempty"`
	Digest      string            `json:"digest,omitempty"`
	ChunkOffset int64             `json:"chunkOffset,omitempty"`
	ChunkSize   int64             `json:"chunkSize,omitempty"`
	ChunkDigest string            `json:"chunkDigest,omitempty"`
}

// encodeAll encodes entries with enc and closes it.
func EncodeAll(enc interface {
	Encode(*toc.Entry) error
	Close() error
}, entries []*toc.Entry) error {
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return enc.Close()
}

// documentWriter writes a TOC document whose entries arrive one by one,
// buffering up to encoderFlushSize bytes.
type DocumentWriter struct {
	W io.Writer
	// start is the document up to its first entry, sep what goes
	// between entries, end what ends the entries array, and emptyEnd
	// what ends it with no entry in it.
	Start, Sep, End, EmptyEnd string
	Buf                       []byte
	n                         int // entries written
	Err                       error
}

// encoderFlushSize is how much JSON a streaming TOC encoder buffers before
// it writes.
const encoderFlushSize = 64 << 10

// next starts an entry.
func (d *DocumentWriter) Next() {
	if d.n == 0 {
		d.Buf = append(d.Buf, d.Start...)
	} else {
		d.Buf = append(d.Buf, d.Sep...)
	}
	d.n++
}

func (d *DocumentWriter) MaybeFlush() error {
	if len(d.Buf) < encoderFlushSize {
		return nil
	}
	return d.flush()
}

func (d *DocumentWriter) flush() error {
	if _, err := d.W.Write(d.Buf); err != nil {
		d.Err = fmt.Errorf("toc: writing TOC: %w", err)
		return d.Err
	}
	d.Buf = d.Buf[:0]
	return nil
}

// close ends the entries array, then writes rest, the end of the
// document, and refuses any later entry.
func (d *DocumentWriter) Close(rest string) error {
	if d.Err != nil {
		return d.Err
	}
	if d.n == 0 {
		d.Buf = append(d.Buf, d.Start+d.EmptyEnd...)
	} else {
		d.Buf = append(d.Buf, d.End...)
	}
	d.Buf = append(d.Buf, rest...)
	if err := d.flush(); err != nil {
		return err
	}
	d.Err = errors.New("toc: TOC encoder: Encode after Close")
	return nil
}

// EncodeXattrs returns the model's xattrs as an Entry holds them (the
// JSON encodes their values in base64), or nil when there are none.
func EncodeXattrs(xattrs map[string]string) map[string][]byte {
	if len(xattrs) == 0 {
		return nil
	}
	m := make(map[string][]byte, len(xattrs))
	for k, v := range xattrs {
		m[k] = []byte(v)
	}
	return m
}

// CheckChunkTiling reports whether a regular file's chunks cover [0, Size)
// in order, without gaps or overlaps. Encoder and decoder share it.
func CheckChunkTiling(e *toc.Entry) error {
	if e.Size < 0 {
		return fmt.Errorf("toc: entry %q: negative size %d: %w", untrusted.Short(e.Name), e.Size, toc.ErrInvalidTOC)
	}
	if e.Size == 0 {
		if len(e.Chunks) != 0 {
			return fmt.Errorf("toc: entry %q: empty file has %d chunks: %w", untrusted.Short(e.Name), len(e.Chunks), toc.ErrInvalidTOC)
		}
		return nil
	}
	var next int64
	for i, c := range e.Chunks {
		if c.Offset != next {
			return fmt.Errorf("toc: entry %q: chunk %d: offset %d, want %d: %w", untrusted.Short(e.Name), i, c.Offset, next, toc.ErrInvalidTOC)
		}
		if c.Size <= 0 || c.Size > e.Size-c.Offset {
			return fmt.Errorf("toc: entry %q: chunk %d: size %d does not fit file size %d at offset %d: %w", untrusted.Short(e.Name), i, c.Size, e.Size, c.Offset, toc.ErrInvalidTOC)
		}
		next = c.Offset + c.Size
	}
	if next != e.Size {
		return fmt.Errorf("toc: entry %q: chunks cover %d of %d bytes: %w", untrusted.Short(e.Name), next, e.Size, toc.ErrInvalidTOC)
	}
	return nil
}

// estargzDecoder turns TOC JSON entries into the model, one at a time.
type Decoder struct {
	TOC       *toc.TOC
	tocOffset int64

	userNames, groupNames map[int]string
	names                 nameBudget

	// file is the regular file whose chunk entries may follow, or nil.
	file *toc.Entry

	// Entries and first chunks are allocated in slabs.
	entries Slab[toc.Entry]
	chunks  Slab[toc.Chunk]
}

// newEStargzDecoder returns a decoder adding entries to t, whose file
// data lies before tocOffset.
func NewDecoder(t *toc.TOC, tocOffset int64, cfg toc.Limits) Decoder {
	return Decoder{
		TOC:        t,
		tocOffset:  tocOffset,
		userNames:  make(map[int]string),
		groupNames: make(map[int]string),
		names:      newNameBudget(cfg),
	}
}

// add decodes the i-th JSON entry. Errors carry the entry's position.
func (d *Decoder) Add(i int, je *Entry) error {
	if je == nil {
		return fmt.Errorf("toc: entry %d: null: %w", i, toc.ErrInvalidTOC)
	}
	var err error
	if je.Type == ChunkType {
		err = d.addChunk(je)
	} else {
		if err := d.CloseFile(); err != nil {
			return err
		}
		err = d.addEntry(je)
	}
	if err != nil {
		return fmt.Errorf("toc: entry %d %q: %w", i, untrusted.Short(je.Name), err)
	}
	return nil
}

func (d *Decoder) addEntry(je *Entry) error {
	if err := d.names.spend(je.Name, je.LinkName); err != nil {
		return err
	}
	name, err := CleanName(je.Name)
	if err != nil {
		return err
	}
	if err := d.names.place(name, je.Type == toc.TypeDir.String(), je.LinkName); err != nil {
		return err
	}
	e := d.entries.New()
	*e = toc.Entry{
		Name:     name,
		Type:     ParseEntryType(je.Type),
		Mode:     je.Mode,
		UID:      je.UID,
		GID:      je.GID,
		LinkName: je.LinkName,
		DevMajor: je.DevMajor,
		DevMinor: je.DevMinor,
	}
	if e.Type == 0 {
		return fmt.Errorf("unknown type %q: %w", untrusted.Short(je.Type), toc.ErrInvalidTOC)
	}
	if name == "." && e.Type != toc.TypeDir {
		return fmt.Errorf("the layer root must be a directory, not a %s: %w", e.Type, toc.ErrInvalidTOC)
	}
	if je.Mode < 0 || je.Mode > math.MaxUint32 {
		return fmt.Errorf("mode %#o out of range: %w", je.Mode, toc.ErrInvalidTOC)
	}
	if je.UID < 0 || je.GID < 0 || je.DevMajor < 0 || je.DevMinor < 0 {
		return fmt.Errorf("negative uid, gid or device number: %w", toc.ErrInvalidTOC)
	}
	e.UserName = rememberName(d.userNames, je.UID, je.UserName)
	e.GroupName = rememberName(d.groupNames, je.GID, je.GroupName)
	if je.ModTime != "" {
		t, err := parseModTime(je.ModTime)
		if err != nil {
			return fmt.Errorf("modtime %q is not RFC 3339: %w", untrusted.Short(je.ModTime), toc.ErrInvalidTOC)
		}
		t = t.UTC().Truncate(time.Second)
		if t.Year() < 0 || t.Year() > 9999 {
			// RFC 3339 cannot express it, so it could not be encoded back.
			return fmt.Errorf("modtime %q out of range: %w", untrusted.Short(je.ModTime), toc.ErrInvalidTOC)
		}
		e.ModTime = t
	}
	if len(je.Xattrs) > 0 {
		e.Xattrs = make(map[string]string, len(je.Xattrs))
		for k, v := range je.Xattrs {
			e.Xattrs[k] = string(v)
		}
	}
	if e.Type == toc.TypeHardlink {
		if e.LinkName, err = CleanName(je.LinkName); err != nil {
			return fmt.Errorf("hardlink target %q: %w", untrusted.Short(je.LinkName), err)
		}
	}
	if e.Type == toc.TypeReg {
		if err := d.startFile(e, je); err != nil {
			return err
		}
	}
	d.TOC.Entries = append(d.TOC.Entries, e)
	return nil
}

// startFile records a regular file's size, digest and first chunk.
func (d *Decoder) startFile(e *toc.Entry, je *Entry) error {
	if je.Size < 0 {
		return fmt.Errorf("negative size %d: %w", je.Size, toc.ErrInvalidTOC)
	}
	e.Size = je.Size
	if je.Digest != "" {
		dgst, err := ParseDigest(je.Digest)
		if err != nil {
			return fmt.Errorf("digest: %w: %w", toc.ErrInvalidTOC, err)
		}
		e.Digest = dgst
	}
	if e.Size == 0 {
		// An empty file has no data; the reference writer leaves its
		// offset and chunk fields unset.
		return nil
	}
	d.file = e
	return d.appendChunk(je)
}

func (d *Decoder) addChunk(je *Entry) error {
	if d.file == nil {
		return fmt.Errorf("chunk entry does not follow a non-empty regular file: %w", toc.ErrInvalidTOC)
	}
	if je.Name != "" {
		name, err := CleanName(je.Name)
		if err != nil {
			return err
		}
		if name != d.file.Name {
			return fmt.Errorf("chunk entry follows file %q: %w", untrusted.Short(d.file.Name), toc.ErrInvalidTOC)
		}
	}
	return d.appendChunk(je)
}

// appendChunk adds the chunk described by je to the current file. A
// chunkSize of zero means "to the end of the file". closeFile checks that
// the chunks tile the file.
func (d *Decoder) appendChunk(je *Entry) error {
	f := d.file
	i := len(f.Chunks)
	if je.Offset < 0 || je.Offset >= d.tocOffset {
		return fmt.Errorf("chunk %d: offset %d outside the data [0, %d): %w", i, je.Offset, d.tocOffset, toc.ErrInvalidTOC)
	}
	if je.InnerOffset < 0 {
		return fmt.Errorf("chunk %d: negative innerOffset %d: %w", i, je.InnerOffset, toc.ErrInvalidTOC)
	}
	c := toc.Chunk{Offset: je.ChunkOffset, Size: je.ChunkSize, FrameOffset: je.Offset, InnerOffset: je.InnerOffset}
	if c.Size == 0 {
		c.Size = f.Size - c.Offset
	} else {
		d.TOC.ChunkSize = max(d.TOC.ChunkSize, c.Size)
	}
	switch {
	case je.ChunkDigest != "" && je.ChunkDigest == string(f.Digest):
		// A file of one chunk: its digest is its chunk's. Sharing the
		// string saves 80 bytes an entry, a third of what a small
		// file's strings cost.
		c.Digest = f.Digest
	case je.ChunkDigest != "":
		dgst, err := ParseDigest(je.ChunkDigest)
		if err != nil {
			return fmt.Errorf("chunk %d: chunkDigest: %w: %w", i, toc.ErrInvalidTOC, err)
		}
		c.Digest = dgst
	}
	if f.Chunks == nil {
		f.Chunks = d.chunks.next()[:0] // a further chunk moves the file's chunks to their own array
	}
	f.Chunks = append(f.Chunks, c)
	return nil
}

// closeFile checks that the current file's chunks cover all of it.
func (d *Decoder) CloseFile() error {
	f := d.file
	d.file = nil
	if f == nil {
		return nil
	}
	return CheckChunkTiling(f)
}

// finish closes the last file, then checks and completes what needs the
// whole TOC: frame order, frame ends, and the landmarks.
func (d *Decoder) Finish() error {
	if err := d.CloseFile(); err != nil {
		return err
	}
	if err := d.CheckFrameOrder(); err != nil {
		return err
	}
	d.SetFrameEnds()
	if err := d.checkExpansion(); err != nil {
		return err
	}
	for _, e := range d.TOC.Entries {
		if e.Type != toc.TypeReg {
			continue
		}
		switch {
		case e.Name == toc.PrefetchLandmark && d.TOC.PrefetchEnd == 0 && len(e.Chunks) > 0:
			d.TOC.PrefetchEnd = e.Chunks[0].FrameOffset
		case e.Name == toc.NoPrefetchLandmark:
			d.TOC.NoPrefetch = true
		}
	}
	return nil
}

// checkExpansion rejects chunks that claim more uncompressed bytes than
// their frame could inflate to, so that a reader is never sent to
// decompress an absurd amount of data.
func (d *Decoder) checkExpansion() error {
	for _, e := range d.TOC.Entries {
		for i, c := range e.Chunks {
			frameLen := c.FrameEnd - c.FrameOffset
			if frameLen > math.MaxInt64/maxDeflateRatio {
				continue // no int64 amount of data could exceed the bound
			}
			// Overflow-safe form of InnerOffset+Size > ratio*frameLen.
			limit := frameLen * maxDeflateRatio
			if c.InnerOffset > limit || c.Size > limit-c.InnerOffset {
				return fmt.Errorf("toc: entry %q: chunk %d: %d bytes at innerOffset %d cannot come from %d compressed bytes: %w",
					untrusted.Short(e.Name), i, c.Size, c.InnerOffset, frameLen, toc.ErrInvalidTOC)
			}
		}
	}
	return nil
}

// checkFrameOrder verifies that chunks appear in TOC order at
// non-decreasing blob offsets and that chunks sharing a frame do not
// overlap in its uncompressed stream.
func (d *Decoder) CheckFrameOrder() error {
	var prev *toc.Chunk
	for _, e := range d.TOC.Entries {
		for i := range e.Chunks {
			c := &e.Chunks[i]
			if prev != nil {
				switch {
				case c.FrameOffset < prev.FrameOffset:
					return fmt.Errorf("toc: entry %q: chunk %d: offset %d precedes the previous chunk's %d: %w",
						untrusted.Short(e.Name), i, c.FrameOffset, prev.FrameOffset, toc.ErrInvalidTOC)
				case c.FrameOffset == prev.FrameOffset && c.InnerOffset-prev.InnerOffset < prev.Size:
					return fmt.Errorf("toc: entry %q: chunk %d: innerOffset %d overlaps the previous chunk in member %d: %w",
						untrusted.Short(e.Name), i, c.InnerOffset, c.FrameOffset, toc.ErrInvalidTOC)
				}
			}
			prev = c
		}
	}
	return nil
}

// setFrameEnds sets each chunk's FrameEnd to the next distinct frame
// offset after it in TOC order, or to the TOC offset for the last frame.
func (d *Decoder) SetFrameEnds() {
	end, cur := d.tocOffset, d.tocOffset
	for i := len(d.TOC.Entries) - 1; i >= 0; i-- {
		chunks := d.TOC.Entries[i].Chunks
		for j := len(chunks) - 1; j >= 0; j-- {
			if chunks[j].FrameOffset != cur {
				end, cur = cur, chunks[j].FrameOffset
			}
			chunks[j].FrameEnd = end
		}
	}
}

// parseDigest is digest.Parse with a fast path for sha256, the only
// algorithm producers use: go-digest validates with a regular expression,
// which dominates decoding a large TOC.
func ParseDigest(s string) (digest.Digest, error) {
	const prefix = "sha256:"
	if len(s) == len(prefix)+64 && s[:len(prefix)] == prefix && isLowerHex(s[len(prefix):]) {
		return digest.Digest(s), nil
	}
	return digest.Parse(s)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !lowerHexDigit[s[i]] {
			return false
		}
	}
	return true
}

// lowerHexDigit is a table: it makes isLowerHex, run on two digests of
// every file, a quarter of the cost of two range comparisons.
var lowerHexDigit = func() (t [256]bool) {
	for _, c := range "0123456789abcdef" {
		t[c] = true
	}
	return t
}()

// rememberName returns the user or group name of an entry: the one it
// carries, which is remembered for its id, or else the last one seen for
// that id.
func rememberName(last map[int]string, id int, name string) string {
	if name != "" {
		last[id] = name
		return name
	}
	return last[id]
}

func ParseEntryType(s string) toc.EntryType {
	for t := toc.TypeReg; t <= toc.TypeFIFO; t++ {
		if t.String() == s {
			return t
		}
	}
	return 0
}

// validName reports whether name is in the model's clean form (what
// cleanName returns).
func ValidName(name string) bool {
	return fs.ValidPath(name) && strings.IndexByte(name, 0) < 0
}

// cleanName normalises an entry name to the model's form. It rejects names
// no legitimate producer writes: empty ones, ones with NUL bytes, and ones
// with a ".." element (which normalisation would silently drop).
func CleanName(name string) (string, error) {
	if ValidName(name) {
		return name, nil // already clean; the common case costs no allocation
	}
	if name == "" {
		return "", fmt.Errorf("empty name: %w", toc.ErrInvalidTOC)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("NUL in name: %w", toc.ErrInvalidTOC)
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("\"..\" element in name: %w", toc.ErrInvalidTOC)
		}
	}
	clean := strings.TrimPrefix(path.Clean("/"+name), "/")
	if clean == "" {
		return ".", nil
	}
	return clean, nil
}
