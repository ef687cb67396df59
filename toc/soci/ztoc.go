package soci

import (
	"time"

	"github.com/opencontainers/go-digest"
)

// Version is the zTOC version soci writes and this package writes.
const Version = "0.9"

// DefaultBuildToolIdentifier is the build_tool_identifier of the zTOCs
// Index makes unless WithBuildToolIdentifier says otherwise.
const DefaultBuildToolIdentifier = "lazylayer"

// Compression is the compression of the layer a zTOC indexes, as the
// zTOC's compression_algorithm records it.
type Compression int8

const (
	// Gzip layers keep gzip checkpoints (see Checkpoints). It is the
	// schema's default: a zTOC without the field indexes a gzip layer.
	Gzip Compression = 1
	// Uncompressed layers keep a TarZinfo (see TarZinfo): spans of
	// a fixed size, no checkpoints.
	Uncompressed Compression = 2
)

// A Ztoc is a decoded zTOC: soci-snapshotter's index of an unmodified
// layer. Encode writes it in the bytes soci's marshaler writes for the
// same values.
type Ztoc struct {
	Version             string // "0.9"
	BuildToolIdentifier string

	// CompressedArchiveSize is the size of the layer blob;
	// UncompressedArchiveSize is where its tar stream ends, after the
	// end-of-archive blocks (record padding after them is not counted).
	CompressedArchiveSize   int64
	UncompressedArchiveSize int64

	Files []File // in order of Offset

	Compression Compression
	// MaxSpanID is the number of spans less one: len(SpanDigests)-1.
	MaxSpanID int32
	// SpanDigests[i] is the sha256 of span i's compressed bytes.
	SpanDigests []digest.Digest
	// Checkpoints is the checkpoint blob of a gzip layer (decode it with
	// DecodeCheckpoints), or the encoded TarZinfo of an uncompressed one
	// (DecodeTarZinfo).
	Checkpoints []byte
}

// A File is a zTOC's record of one tar entry.
type File struct {
	Name string
	// Type is "reg", "dir", "symlink", "hardlink", "char", "block" or
	// "fifo".
	Type string
	// Offset is where the entry's data starts in the uncompressed tar
	// stream, Size its length.
	Offset, Size       int64
	Linkname           string
	Mode               int64
	UID, GID           uint32
	Uname, Gname       string
	ModTime            time.Time
	Devmajor, Devminor int64
	// PAXRecords are the entry's PAX records, all of them (soci calls
	// them xattrs), in the order the zTOC lists them: soci sorts them by
	// key.
	PAXRecords []PAXRecord
}

// A PAXRecord is one PAX extended header record.
type PAXRecord struct{ Key, Value string }
