package estargz

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/toc"

	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
)

// estargzTOC is the TOC JSON document. Field order and tags follow the
// reference writer (containerd/stargz-snapshotter/estargz JTOC) so that
// json.MarshalIndent produces the same bytes.
type estargzTOC struct {
	Version int              `json:"version"`
	Entries []*tocjson.Entry `json:"entries"`
}

const estargzVersion = 1

// Marshal encodes t as eStargz TOC JSON, byte for byte as the
// reference writer does: json.MarshalIndent with a tab indent and no
// trailing newline. The TOC digest is digest.FromBytes of the result.
//
// Entries are written in order. A regular file's first chunk is written on
// its "reg" entry and each further chunk as a "chunk" entry. userName and
// groupName are written only when they differ from the last name written
// for the same uid or gid, and chunkSize on a file's last chunk only when
// the chunk is exactly t.ChunkSize long, as the reference does.
func Marshal(t *toc.TOC) ([]byte, error) {
	// Entries of the TOC of a real layer average about 320 bytes; room
	// for more saves copying the whole document when the guess is short.
	b := bytes.NewBuffer(make([]byte, 0, 64+400*len(t.Entries)))
	if err := tocjson.EncodeAll(NewEncoder(b, t.ChunkSize), t.Entries); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Encoder writes eStargz TOC JSON one entry at a time: the bytes
// Marshal returns for a TOC of the same entries and ChunkSize,
// without the TOC or its JSON in memory. A writer of a layer of a million
// files streams its index through the compressor and a hash this way.
type Encoder struct {
	doc       tocjson.DocumentWriter
	chunkSize int64
	owners    ownerNames
	scratch   []tocjson.Entry
}

// NewEncoder returns an encoder that writes to w; chunkSize is the
// TOC's ChunkSize.
func NewEncoder(w io.Writer, chunkSize int64) *Encoder {
	doc := tocjson.DocumentWriter{W: w, Start: estargzDocumentStart, Sep: ",", End: estargzEntriesEnd, EmptyEnd: "]"}
	return &Encoder{doc: doc, chunkSize: chunkSize, owners: newOwnerNames()}
}

// Encode writes the next entry. An entry Marshal would refuse is
// an error wrapping ErrInvalidTOC, and so is every later call.
func (enc *Encoder) Encode(e *toc.Entry) error {
	if enc.doc.Err != nil {
		return enc.doc.Err
	}
	enc.scratch, enc.doc.Err = enc.owners.estargzEntries(enc.scratch[:0], e, enc.chunkSize)
	if enc.doc.Err != nil {
		return enc.doc.Err
	}
	for i := range enc.scratch {
		enc.doc.Next()
		enc.doc.Buf = append(enc.doc.Buf, estargzEntrySeparator...)
		enc.doc.Buf = appendEStargzEntry(enc.doc.Buf, &enc.scratch[i])
	}
	return enc.doc.MaybeFlush()
}

// Close writes the end of the document. It does not close the underlying
// writer.
func (enc *Encoder) Close() error {
	return enc.doc.Close(estargzDocumentEnd)
}

// newEStargzDocument converts t to the TOC JSON document that
// Marshal encodes.
func newEStargzDocument(t *toc.TOC) (*estargzTOC, error) {
	n := 0
	for _, e := range t.Entries {
		n += max(1, len(e.Chunks))
	}
	// One JSON entry per entry or chunk, allocated together.
	block := make([]tocjson.Entry, 0, n)
	owners := newOwnerNames()
	for _, e := range t.Entries {
		var err error
		if block, err = owners.estargzEntries(block, e, t.ChunkSize); err != nil {
			return nil, err
		}
	}
	doc := &estargzTOC{Version: estargzVersion, Entries: make([]*tocjson.Entry, len(block))}
	for i := range block {
		doc.Entries[i] = &block[i]
	}
	return doc, nil
}

// ownerNames are the user and group names last written for each id: the
// reference writes a name only when it changes.
type ownerNames struct{ users, groups map[int]string }

func newOwnerNames() ownerNames {
	return ownerNames{users: make(map[int]string), groups: make(map[int]string)}
}

// estargzEntries appends e's JSON entries to dst: the entry itself, with
// its first chunk, then one "chunk" entry per further chunk.
func (o ownerNames) estargzEntries(dst []tocjson.Entry, e *toc.Entry, chunkSize int64) ([]tocjson.Entry, error) {
	if !tocjson.ValidName(e.Name) {
		return dst, fmt.Errorf("toc: entry %q: name is not clean: %w", e.Name, toc.ErrInvalidTOC)
	}
	if tocjson.ParseEntryType(e.Type.String()) == 0 {
		return dst, fmt.Errorf("toc: entry %q: unknown type %d: %w", e.Name, e.Type, toc.ErrInvalidTOC)
	}
	if e.Type == toc.TypeHardlink && !tocjson.ValidName(e.LinkName) {
		return dst, fmt.Errorf("toc: entry %q: hardlink target %q is not clean: %w", e.Name, e.LinkName, toc.ErrInvalidTOC)
	}
	je := tocjson.Entry{
		Name:      e.Name,
		Type:      e.Type.String(),
		ModTime:   formatModTime(e.ModTime),
		LinkName:  e.LinkName,
		Mode:      e.Mode,
		UID:       e.UID,
		GID:       e.GID,
		UserName:  nameIfChanged(o.users, e.UID, e.UserName),
		GroupName: nameIfChanged(o.groups, e.GID, e.GroupName),
		DevMajor:  e.DevMajor,
		DevMinor:  e.DevMinor,
	}
	je.Xattrs = tocjson.EncodeXattrs(e.Xattrs)
	if e.Type != toc.TypeReg {
		return append(dst, je), nil
	}
	je.Size = e.Size
	je.Digest = e.Digest.String()
	if err := tocjson.CheckChunkTiling(e); err != nil {
		return dst, err
	}
	if len(e.Chunks) == 0 {
		return append(dst, je), nil
	}
	for i, c := range e.Chunks {
		ce := je
		if i > 0 {
			ce = tocjson.Entry{Name: e.Name, Type: tocjson.ChunkType}
		}
		ce.Offset = c.FrameOffset
		ce.InnerOffset = c.InnerOffset
		ce.ChunkOffset = c.Offset
		if i < len(e.Chunks)-1 || c.Size == chunkSize {
			ce.ChunkSize = c.Size
		}
		ce.ChunkDigest = c.Digest.String()
		dst = append(dst, ce)
	}
	return dst, nil
}

// nameIfChanged returns name if it differs from the last name recorded for
// id, recording it; otherwise "". The reference writer emits userName and
// groupName this way.
func nameIfChanged(last map[int]string, id int, name string) string {
	if name == "" || last[id] == name {
		return ""
	}
	last[id] = name
	return name
}

// formatModTime renders t as the reference does: UTC, RFC 3339, whole
// seconds; empty for the zero time and for the Unix epoch.
func formatModTime(t time.Time) string {
	if t.IsZero() || t.Unix() == 0 {
		return ""
	}
	return t.UTC().Round(time.Second).Format(time.RFC3339)
}

// Unmarshal decodes eStargz TOC JSON. tocOffset is the blob offset
// of the TOC member (Footer.TOCOffset; for an external TOC, the blob size
// minus the footer size): all file data must lie before it.
//
// Names are normalised as path.Clean("/"+name) without the leading slash;
// the layer root ("/" or "./") becomes ".". Chunk entries are merged into
// their file's Chunks, and each chunk's FrameEnd is set to the next
// distinct data offset in TOC order (tocOffset for the last). userName and
// groupName omitted because unchanged are filled in. The TOC's Digest is
// the digest of data; PrefetchEnd and NoPrefetch reflect the landmarks.
//
// Every structural problem yields an error wrapping ErrInvalidTOC (or
// ErrUnsupportedVersion, ErrTOCTooLarge); decoding never panics. Several
// entries may share a name, as in tar; the last one wins for readers.
func Unmarshal(data []byte, tocOffset int64, opts ...toc.DecodeOption) (*toc.TOC, error) {
	cfg := toc.NewLimits(opts...)
	if int64(len(data)) > cfg.MaxTOCSize {
		return nil, fmt.Errorf("toc: estargz TOC JSON is %d bytes, limit %d: %w", len(data), cfg.MaxTOCSize, toc.ErrTOCTooLarge)
	}
	if tocOffset < 0 {
		return nil, fmt.Errorf("toc: negative TOC offset %d: %w", tocOffset, toc.ErrInvalidTOC)
	}
	return unmarshalEStargz(data, tocOffset, cfg, tocjson.DecodeDocument)
}

// unmarshalEStargz is Unmarshal with the JSON decoder as a
// parameter, so that tests can compare the fast one with encoding/json.
func unmarshalEStargz(data []byte, tocOffset int64, cfg toc.Limits,
	decode func(data []byte, maxEntries int) (*int, []*tocjson.Entry, error)) (*toc.TOC, error) {
	// Hashing a large TOC takes about a third of the time decoding it
	// does; a reader opening a layer waits for both, so they overlap.
	sum := make(chan digest.Digest, 1)
	go func() { sum <- digest.FromBytes(data) }()
	version, entries, err := decode(data, cfg.MaxEntries)
	return buildEStargzTOC(version, entries, err, <-sum, tocOffset, cfg)
}

// buildEStargzTOC turns decoded TOC JSON, or the error decoding it, into a
// TOC whose digest is dgst.
func buildEStargzTOC(version *int, entries []*tocjson.Entry, err error, dgst digest.Digest, tocOffset int64, cfg toc.Limits) (*toc.TOC, error) {
	if errors.Is(err, tocjson.ErrTooManyEntries) {
		return nil, fmt.Errorf("toc: estargz TOC has more than %d entries: %w", cfg.MaxEntries, toc.ErrTOCTooLarge)
	}
	if err != nil {
		return nil, fmt.Errorf("toc: estargz TOC JSON: %w: %w", toc.ErrInvalidTOC, untrusted.Err(err))
	}
	if version == nil {
		return nil, fmt.Errorf("toc: estargz TOC has no version: %w", toc.ErrUnsupportedVersion)
	}
	if *version != estargzVersion {
		return nil, fmt.Errorf("toc: estargz TOC version %d: %w", *version, toc.ErrUnsupportedVersion)
	}
	if len(entries) > cfg.MaxEntries {
		return nil, fmt.Errorf("toc: estargz TOC has %d entries, limit %d: %w", len(entries), cfg.MaxEntries, toc.ErrTOCTooLarge)
	}
	d := tocjson.NewDecoder(&toc.TOC{Format: toc.FormatEStargz, Digest: dgst, Entries: make([]*toc.Entry, 0, len(entries))}, tocOffset, cfg)
	for i, je := range entries {
		if err := d.Add(i, je); err != nil {
			return nil, err
		}
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return d.TOC, nil
}
