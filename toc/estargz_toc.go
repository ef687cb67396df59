package toc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
)

// estargzTOC is the TOC JSON document. Field order and tags follow the
// reference writer (containerd/stargz-snapshotter/estargz JTOC) so that
// json.MarshalIndent produces the same bytes.
type estargzTOC struct {
	Version int             `json:"version"`
	Entries []*estargzEntry `json:"entries"`
}

const estargzVersion = 1

// MarshalEStargz encodes t as eStargz TOC JSON, byte for byte as the
// reference writer does: json.MarshalIndent with a tab indent and no
// trailing newline. The TOC digest is digest.FromBytes of the result.
//
// Entries are written in order. A regular file's first chunk is written on
// its "reg" entry and each further chunk as a "chunk" entry. userName and
// groupName are written only when they differ from the last name written
// for the same uid or gid, and chunkSize on a file's last chunk only when
// the chunk is exactly t.ChunkSize long, as the reference does.
func MarshalEStargz(t *TOC) ([]byte, error) {
	// Entries of the TOC of a real layer average about 320 bytes; room
	// for more saves copying the whole document when the guess is short.
	b := bytes.NewBuffer(make([]byte, 0, 64+400*len(t.Entries)))
	if err := encodeAll(NewEStargzEncoder(b, t.ChunkSize), t.Entries); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// EStargzEncoder writes eStargz TOC JSON one entry at a time: the bytes
// MarshalEStargz returns for a TOC of the same entries and ChunkSize,
// without the TOC or its JSON in memory. A writer of a layer of a million
// files streams its index through the compressor and a hash this way.
type EStargzEncoder struct {
	doc       documentWriter
	chunkSize int64
	owners    ownerNames
	scratch   []estargzEntry
}

// NewEStargzEncoder returns an encoder that writes to w; chunkSize is the
// TOC's ChunkSize.
func NewEStargzEncoder(w io.Writer, chunkSize int64) *EStargzEncoder {
	doc := documentWriter{w: w, start: estargzDocumentStart, sep: ",", end: estargzEntriesEnd, emptyEnd: "]"}
	return &EStargzEncoder{doc: doc, chunkSize: chunkSize, owners: newOwnerNames()}
}

// Encode writes the next entry. An entry MarshalEStargz would refuse is
// an error wrapping ErrInvalidTOC, and so is every later call.
func (enc *EStargzEncoder) Encode(e *Entry) error {
	if enc.doc.err != nil {
		return enc.doc.err
	}
	enc.scratch, enc.doc.err = enc.owners.estargzEntries(enc.scratch[:0], e, enc.chunkSize)
	if enc.doc.err != nil {
		return enc.doc.err
	}
	for i := range enc.scratch {
		enc.doc.next()
		enc.doc.buf = append(enc.doc.buf, estargzEntrySeparator...)
		enc.doc.buf = appendEStargzEntry(enc.doc.buf, &enc.scratch[i])
	}
	return enc.doc.maybeFlush()
}

// Close writes the end of the document. It does not close the underlying
// writer.
func (enc *EStargzEncoder) Close() error {
	return enc.doc.close(estargzDocumentEnd)
}

// newEStargzDocument converts t to the TOC JSON document that
// MarshalEStargz encodes.
func newEStargzDocument(t *TOC) (*estargzTOC, error) {
	n := 0
	for _, e := range t.Entries {
		n += max(1, len(e.Chunks))
	}
	// One JSON entry per entry or chunk, allocated together.
	block := make([]estargzEntry, 0, n)
	owners := newOwnerNames()
	for _, e := range t.Entries {
		var err error
		if block, err = owners.estargzEntries(block, e, t.ChunkSize); err != nil {
			return nil, err
		}
	}
	doc := &estargzTOC{Version: estargzVersion, Entries: make([]*estargzEntry, len(block))}
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
func (o ownerNames) estargzEntries(dst []estargzEntry, e *Entry, chunkSize int64) ([]estargzEntry, error) {
	if !validName(e.Name) {
		return dst, fmt.Errorf("toc: entry %q: name is not clean: %w", e.Name, ErrInvalidTOC)
	}
	if parseEntryType(e.Type.String()) == 0 {
		return dst, fmt.Errorf("toc: entry %q: unknown type %d: %w", e.Name, e.Type, ErrInvalidTOC)
	}
	if e.Type == TypeHardlink && !validName(e.LinkName) {
		return dst, fmt.Errorf("toc: entry %q: hardlink target %q is not clean: %w", e.Name, e.LinkName, ErrInvalidTOC)
	}
	je := estargzEntry{
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
	if len(e.Xattrs) > 0 {
		je.Xattrs = make(map[string][]byte, len(e.Xattrs))
		for k, v := range e.Xattrs {
			je.Xattrs[k] = []byte(v)
		}
	}
	if e.Type != TypeReg {
		return append(dst, je), nil
	}
	je.Size = e.Size
	je.Digest = e.Digest.String()
	if err := checkChunkTiling(e); err != nil {
		return dst, err
	}
	if len(e.Chunks) == 0 {
		return append(dst, je), nil
	}
	for i, c := range e.Chunks {
		ce := je
		if i > 0 {
			ce = estargzEntry{Name: e.Name, Type: estargzChunkType}
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

// UnmarshalEStargz decodes eStargz TOC JSON. tocOffset is the blob offset
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
func UnmarshalEStargz(data []byte, tocOffset int64, opts ...DecodeOption) (*TOC, error) {
	cfg := newDecodeConfig(opts)
	if int64(len(data)) > cfg.maxTOCSize {
		return nil, fmt.Errorf("toc: estargz TOC JSON is %d bytes, limit %d: %w", len(data), cfg.maxTOCSize, ErrTOCTooLarge)
	}
	if tocOffset < 0 {
		return nil, fmt.Errorf("toc: negative TOC offset %d: %w", tocOffset, ErrInvalidTOC)
	}
	return unmarshalEStargz(data, tocOffset, cfg, decodeEStargzDocument)
}

// unmarshalEStargz is UnmarshalEStargz with the JSON decoder as a
// parameter, so that tests can compare the fast one with encoding/json.
func unmarshalEStargz(data []byte, tocOffset int64, cfg decodeConfig,
	decode func(data []byte, maxEntries int) (*int, []*estargzEntry, error)) (*TOC, error) {
	// Hashing a large TOC takes about a third of the time decoding it
	// does; a reader opening a layer waits for both, so they overlap.
	sum := make(chan digest.Digest, 1)
	go func() { sum <- digest.FromBytes(data) }()
	version, entries, err := decode(data, cfg.maxEntries)
	return buildEStargzTOC(version, entries, err, <-sum, tocOffset, cfg)
}

// buildEStargzTOC turns decoded TOC JSON, or the error decoding it, into a
// TOC whose digest is dgst.
func buildEStargzTOC(version *int, entries []*estargzEntry, err error, dgst digest.Digest, tocOffset int64, cfg decodeConfig) (*TOC, error) {
	if errors.Is(err, errTooManyEntries) {
		return nil, fmt.Errorf("toc: estargz TOC has more than %d entries: %w", cfg.maxEntries, ErrTOCTooLarge)
	}
	if err != nil {
		return nil, fmt.Errorf("toc: estargz TOC JSON: %w: %w", ErrInvalidTOC, untrusted.Err(err))
	}
	if version == nil {
		return nil, fmt.Errorf("toc: estargz TOC has no version: %w", ErrUnsupportedVersion)
	}
	if *version != estargzVersion {
		return nil, fmt.Errorf("toc: estargz TOC version %d: %w", *version, ErrUnsupportedVersion)
	}
	if len(entries) > cfg.maxEntries {
		return nil, fmt.Errorf("toc: estargz TOC has %d entries, limit %d: %w", len(entries), cfg.maxEntries, ErrTOCTooLarge)
	}
	d := newEStargzDecoder(&TOC{Format: FormatEStargz, Digest: dgst, Entries: make([]*Entry, 0, len(entries))}, tocOffset, cfg)
	for i, je := range entries {
		if err := d.add(i, je); err != nil {
			return nil, err
		}
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return d.toc, nil
}
