package toc

import "fmt"

// MaxFooterSize is the size of the largest footer of any format this package
// knows (the 72-byte zstd:chunked footer frame). A reader that fetches at
// least this many bytes from a blob's end can always call ParseFooter.
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

// footerParser recognises one footer layout at the end of tail. ok is false
// when the layout does not match (tail may belong to another format); err
// is set when it matches but is corrupt.
type footerParser func(tail []byte) (f Footer, ok bool, err error)

// footerParsers lists every known footer layout. Layouts are unambiguous
// (each has its own magic at a fixed distance from the end), so the order
// only decides which one is tried first.
func footerParsers() []footerParser {
	return []footerParser{
		parseEStargzFooter,
		parseLegacyEStargzFooter,
		parseEStargzExternalTOCFooter,
		parseZstdChunkedFooter,
		parseLegacyZstdChunkedFooter,
	}
}

// ParseFooter detects the format of a blob from its tail and decodes the
// footer. tail must be the last len(tail) bytes of the blob; passing
// MaxFooterSize bytes (or more, e.g. a tail that also holds the index) is
// always enough. A tail shorter than a format's footer cannot match that
// format. If no format matches, the error wraps ErrNoFooter and
// ErrInvalidFooter; a footer that matches a format but is malformed
// yields an error wrapping ErrInvalidFooter only.
func ParseFooter(tail []byte) (Footer, error) {
	for _, parse := range footerParsers() {
		f, ok, err := parse(tail)
		if err != nil {
			return Footer{}, err
		}
		if ok {
			return f, nil
		}
	}
	return Footer{}, fmt.Errorf("toc: last %d bytes: %w: %w", len(tail), ErrNoFooter, ErrInvalidFooter)
}
