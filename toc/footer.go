package toc

// MaxFooterSize bounds the footer of every format: the largest, the 72-byte
// zstd:chunked footer frame. A reader that fetches at least this many
// bytes from a blob's end holds the footer of a blob of any format; a
// format whose footer does not fit does not fit the reader.
const MaxFooterSize = 72

// Footer is what a blob's footer tells about where its index lives.
type Footer struct {
	// Format is the blob's format.
	Format Format
	// Size is the length of the footer in bytes; the footer occupies the
	// last Size bytes of the blob.
	Size int

	// TOCOffset is the blob offset where the index starts (for eStargz the
	// TOC gzip member; for zstd:chunked the TOC frame's payload). The
	// compressed data of all entries lies before it. When ExternalTOC is
	// set it is zero and the data runs up to the footer.
	TOCOffset int64
	// ExternalTOC reports that the index is not stored in the blob at all
	// (eStargz external-TOC variant); the caller must obtain it elsewhere.
	ExternalTOC bool

	// TOCLength is the compressed length of the index, when the footer
	// records it (zstd:chunked). Zero means the index runs from TOCOffset
	// up to the footer (eStargz).
	TOCLength int64
	// TOCUncompressedLength is the index's uncompressed length, when the
	// footer records it (zstd:chunked).
	TOCUncompressedLength int64

	// TarSplitOffset, TarSplitLength and TarSplitUncompressedLength locate
	// the tar-split stream, when the format has one (zstd:chunked). All zero
	// otherwise.
	TarSplitOffset             int64
	TarSplitLength             int64
	TarSplitUncompressedLength int64
}
