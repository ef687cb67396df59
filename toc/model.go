package toc

import (
	"io/fs"
	"time"

	"github.com/opencontainers/go-digest"
)

// Format identifies a seekable layer format.
type Format uint8

const (
	// FormatUnknown is the zero Format: no seekable index was recognised.
	FormatUnknown Format = iota
	// FormatEStargz is eStargz: gzip members plus a stargz.index.json TOC.
	FormatEStargz
	// FormatZstdChunked is zstd:chunked: zstd frames plus a TOC, tar-split
	// and footer in skippable frames.
	FormatZstdChunked
	// FormatSOCI is an unmodified gzip or uncompressed tar layer indexed
	// by a separate soci-snapshotter zTOC (package toc/soci).
	FormatSOCI
)

// String returns the format's conventional name.
func (f Format) String() string {
	switch f {
	case FormatEStargz:
		return "estargz"
	case FormatZstdChunked:
		return "zstd:chunked"
	case FormatSOCI:
		return "soci"
	default:
		return "unknown"
	}
}

// EntryType is the kind of a layer entry. The zero value is invalid.
type EntryType uint8

const (
	TypeReg EntryType = iota + 1
	TypeDir
	TypeSymlink
	TypeHardlink
	TypeChar
	TypeBlock
	TypeFIFO
)

// String returns the type's name as eStargz and zstd:chunked spell it.
func (t EntryType) String() string {
	switch t {
	case TypeReg:
		return "reg"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	case TypeHardlink:
		return "hardlink"
	case TypeChar:
		return "char"
	case TypeBlock:
		return "block"
	case TypeFIFO:
		return "fifo"
	default:
		return "invalid"
	}
}

// Entry is one file system object of a layer, independent of the format
// that indexes it. A regular file's contents are described by Chunks, which
// cover [0, Size) in order without gaps.
type Entry struct {
	// Name is the cleaned, slash-separated path relative to the layer root:
	// "usr/bin/sh", never "/usr/bin/sh", "./usr/bin/sh" or "". The layer
	// root itself (a tar entry "./" or "/") is named ".", as in io/fs.
	Name string
	// TarName is the name exactly as the layer's tar header spells it
	// ("./etc/", say), kept where it differs from Name. zstd:chunked needs
	// it: containers/storage compares TOC names with the tar-split's header
	// names byte for byte. Empty means the same as Name.
	TarName string
	Type    EntryType
	// Size is the content size of a regular file; zero otherwise.
	Size int64
	// Mode is the raw tar header mode: permission bits plus the setuid
	// (04000), setgid (02000) and sticky (01000) bits. Some tar writers also
	// set file-type bits; FileMode ignores them in favour of Type.
	Mode int64

	UID, GID            int
	UserName, GroupName string

	// ModTime is in UTC; the zero Time means unknown. eStargz keeps whole
	// seconds, zstd:chunked keeps nanoseconds.
	ModTime time.Time
	// AccessTime and ChangeTime are carried by zstd:chunked only.
	AccessTime, ChangeTime time.Time

	// LinkName is the target of a symlink, or the Name of the entry a
	// hardlink refers to.
	LinkName string

	DevMajor, DevMinor int64

	// Xattrs are the extended attributes (PAX SCHILY.xattr.*), by name.
	Xattrs map[string]string

	// Digest is the sha256 of a regular file's whole content; it may be
	// empty for an empty file.
	Digest digest.Digest

	Chunks []Chunk
}

// FileMode converts Mode and Type into an fs.FileMode.
func (e *Entry) FileMode() fs.FileMode {
	m := fs.FileMode(e.Mode & 0o777)
	if e.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if e.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if e.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch e.Type {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeBlock:
		m |= fs.ModeDevice
	case TypeFIFO:
		m |= fs.ModeNamedPipe
	}
	return m
}

// Chunk is a contiguous piece of a regular file's content and the place in
// the blob that holds it compressed.
//
// The compressed unit that contains a chunk (a gzip member, a zstd frame or
// a gzip span) occupies blob bytes [FrameOffset, FrameEnd). Decompressing
// that unit from its start and skipping InnerOffset bytes yields the chunk's
// Size bytes. Several chunks may share one unit (eStargz with a minimum
// chunk size); they then differ in InnerOffset.
type Chunk struct {
	// Offset is the chunk's position within the file's content.
	Offset int64
	Size   int64
	// Digest is the sha256 of the chunk's uncompressed bytes. Empty means
	// the format carries no per-chunk digest for it; readers then verify
	// by other means (the file Digest, or a frame digest).
	Digest digest.Digest

	FrameOffset int64
	FrameEnd    int64
	InnerOffset int64

	// Zeros marks a chunk of all zero bytes (zstd:chunked "zeros"). Its
	// frame fields still say where the stream holds it, but a reader never
	// needs to fetch it.
	Zeros bool
}

// Landmark entries, which eStargz defines and zstd:chunked writers keep:
// files that mark where the prioritised files end. Readers hide them.
const (
	// PrefetchLandmark is the entry that ends the prioritised files: the
	// bytes before its data should be fetched first.
	PrefetchLandmark = ".prefetch.landmark"
	// NoPrefetchLandmark is the first entry of a layer whose producer
	// prioritised no files.
	NoPrefetchLandmark = ".no.prefetch.landmark"
)

// TOC is a decoded layer index.
type TOC struct {
	Format Format
	// Entries are in the order the index lists them, which is the order
	// their data appears in the blob. Landmark entries (eStargz
	// .prefetch.landmark and .no.prefetch.landmark) are kept, so that a
	// decoded TOC encodes back to the same bytes; readers hide them.
	Entries []*Entry

	// Digest is the digest a layer descriptor's annotation pins this index
	// to: for eStargz the sha256 of the TOC JSON, for zstd:chunked the
	// sha256 of the compressed TOC.
	Digest digest.Digest

	// PrefetchEnd, if positive, is the blob offset where the prioritised
	// region ends: the producer asked that bytes [0, PrefetchEnd) be
	// fetched first (eStargz .prefetch.landmark). NoPrefetch reports an
	// explicit .no.prefetch.landmark.
	PrefetchEnd int64
	NoPrefetch  bool

	// ChunkSize is the producer's maximum chunk size, when known. eStargz
	// needs it to encode a TOC the way the reference writer does, which
	// writes chunkSize on a file's last chunk only when that chunk is
	// exactly ChunkSize long. estargz.Unmarshal sets it to the largest explicit
	// chunkSize in the TOC, so that a decoded TOC encodes back to the same
	// bytes. Zero means unknown.
	ChunkSize int64

	// TarSplitDigest is the digest of the compressed tar-split stream that
	// zstd:chunked carries to rebuild the original tar exactly; empty for
	// other formats.
	TarSplitDigest digest.Digest
}
