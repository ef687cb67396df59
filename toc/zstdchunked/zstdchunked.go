package zstdchunked

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/lazylayer/lazylayer/toc"

	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
)

// Layout constants of zstd:chunked blobs.
const (
	// SkippableFrameHeaderSize is the size of a zstd skippable frame's
	// header: a 4-byte magic number and a little-endian 32-bit payload
	// length.
	SkippableFrameHeaderSize = 8

	// FooterSize is the size of the footer frame that
	// containers/storage writes since v1.50: a skippable frame with a
	// 64-byte payload. No containers/storage version reads it when the
	// layer's annotations are there.
	FooterSize = SkippableFrameHeaderSize + 64
	// LegacyFooterSize is the size of the footer frame of the
	// first zstd:chunked writers (stargz-snapshotter's estargz/zstdchunked,
	// containers/storage up to v1.46): a skippable frame with a 40-byte
	// payload and no tar-split. It is the only footer stargz-snapshotter
	// reads, and the one lazylayer's writer writes.
	LegacyFooterSize = SkippableFrameHeaderSize + 40

	// ManifestType is the only manifest type zstd:chunked
	// defines ("CRFS"), recorded in the footer and the manifest-position
	// annotation.
	ManifestType = 1
)

// Layer descriptor annotations of zstd:chunked layers.
const (
	// AnnotationManifestChecksum pins the digest of the
	// COMPRESSED TOC (the payload of the TOC's skippable frame).
	AnnotationManifestChecksum = "io.github.containers.zstd-chunked.manifest-checksum"
	// AnnotationManifestPosition locates the TOC:
	// "offset:length:uncompressedLength:1", offset pointing at the payload.
	AnnotationManifestPosition = "io.github.containers.zstd-chunked.manifest-position"
	// AnnotationTarSplitPosition locates the tar-split:
	// "offset:length:uncompressedLength".
	AnnotationTarSplitPosition = "io.github.containers.zstd-chunked.tarsplit-position"

	// AnnotationTarSplitChecksum pins the digest of the
	// compressed tar-split for containers/storage v1.47 to v1.53, which
	// require it beside the tar-split position; later versions take the
	// digest from the TOC's tarSplitDigest.
	AnnotationTarSplitChecksum = "io.github.containers.zstd-chunked.tarsplit-checksum"

	// LegacyAnnotationManifestChecksum and
	// LegacyAnnotationManifestPosition are the first spellings
	// of the manifest keys, the only ones estargz/zstdchunked and
	// containers/storage up to v1.43 (podman 4.3) know.
	// Annotations writes both spellings;
	// ParseAnnotations reads either.
	LegacyAnnotationManifestChecksum = "io.containers.zstd-chunked.manifest-checksum"
	LegacyAnnotationManifestPosition = "io.containers.zstd-chunked.manifest-position"
)

// ErrInvalidFrame means a zstd skippable frame is malformed: a wrong magic
// number, or a length that does not match the bytes that hold it.
var ErrInvalidFrame = errors.New("invalid skippable frame")

// skippableMagicBase is the first of the 16 skippable frame magic numbers
// (0x184D2A50..0x184D2A5F, RFC 8878 section 3.1.2). zstd:chunked writes
// this one; readers accept all 16, as zstd decoders do.
const skippableMagicBase = 0x184D2A50

// zstdChunkedMagic ends the footer payload of containers/storage;
// legacyZstdChunkedMagic (one lower-case letter apart) ends the footer of
// estargz/zstdchunked. Both are accepted in both footer layouts.
var (
	zstdChunkedMagic       = [8]byte{'G', 'N', 'U', 'l', 'I', 'n', 'U', 'x'}
	legacyZstdChunkedMagic = [8]byte{'G', 'n', 'U', 'l', 'I', 'n', 'U', 'x'}
)

// AppendSkippableFrame appends to dst a zstd skippable frame holding
// payload, as zstd:chunked writes its TOC, tar-split and footer. Plain zstd
// decoders skip such frames. The payload must be shorter than 4 GiB.
func AppendSkippableFrame(dst, payload []byte) ([]byte, error) {
	dst, err := AppendSkippableFrameHeader(dst, int64(len(payload)))
	if err != nil {
		return dst, err
	}
	return append(dst, payload...), nil
}

// AppendSkippableFrameHeader appends to dst the header of a skippable
// frame of n bytes of payload, for a writer that streams the payload
// after it. n must be shorter than 4 GiB.
func AppendSkippableFrameHeader(dst []byte, n int64) ([]byte, error) {
	if n < 0 || n > math.MaxUint32 {
		return dst, fmt.Errorf("toc: skippable frame payload of %d bytes exceeds 4 GiB: %w", n, ErrInvalidFrame)
	}
	dst = binary.LittleEndian.AppendUint32(dst, skippableMagicBase)
	return binary.LittleEndian.AppendUint32(dst, uint32(n)), nil
}

// ParseSkippableFrame decodes the skippable frame at the start of b and
// returns its payload (a subslice of b) and the frame's total size. It
// fails with ErrInvalidFrame when b does not start with a skippable frame
// header or when the header claims more bytes than b holds.
func ParseSkippableFrame(b []byte) (payload []byte, size int, err error) {
	if len(b) < SkippableFrameHeaderSize {
		return nil, 0, fmt.Errorf("toc: %d bytes cannot hold a skippable frame header: %w", len(b), ErrInvalidFrame)
	}
	if magic := binary.LittleEndian.Uint32(b); magic&^0xf != skippableMagicBase {
		return nil, 0, fmt.Errorf("toc: magic %#08x is not a skippable frame's: %w", magic, ErrInvalidFrame)
	}
	n := uint64(binary.LittleEndian.Uint32(b[4:]))
	if n > uint64(len(b)-SkippableFrameHeaderSize) {
		return nil, 0, fmt.Errorf("toc: skippable frame claims %d bytes of payload, %d available: %w",
			n, len(b)-SkippableFrameHeaderSize, ErrInvalidFrame)
	}
	size = SkippableFrameHeaderSize + int(n)
	return b[SkippableFrameHeaderSize:size], size, nil
}

// SkippableFramePayload returns the payload of the skippable frame whose
// payload the footer or annotations place at blob offset payloadOffset with
// the given length. region holds the blob bytes starting at regionOffset
// and must include the frame's header (the 8 bytes before payloadOffset).
// The header's length must equal length: a frame that lies about its size
// is an error wrapping ErrInvalidFrame.
func SkippableFramePayload(region []byte, regionOffset, payloadOffset, length int64) ([]byte, error) {
	start := payloadOffset - SkippableFrameHeaderSize
	if regionOffset < 0 || length < 0 || start < regionOffset || length > int64(len(region)) ||
		start-regionOffset > int64(len(region))-SkippableFrameHeaderSize-length {
		return nil, fmt.Errorf("toc: frame of %d bytes at offset %d is not inside the %d bytes fetched at offset %d: %w",
			length, payloadOffset, len(region), regionOffset, ErrInvalidFrame)
	}
	b := region[start-regionOffset:]
	payload, _, err := ParseSkippableFrame(b[:SkippableFrameHeaderSize+length])
	if err != nil {
		return nil, fmt.Errorf("toc: frame at offset %d: %w", start, err)
	}
	if int64(len(payload)) != length {
		return nil, fmt.Errorf("toc: frame at offset %d holds %d bytes, expected %d: %w", start, len(payload), length, ErrInvalidFrame)
	}
	return payload, nil
}

// Footer returns the footer frame of the layout f.Size names,
// a skippable frame whose payload holds little-endian uint64s:
//
//   - FooterSize (72 bytes; also for Size 0), the footer of
//     containers/storage since v1.50: the TOC offset, compressed and
//     uncompressed length, the manifest type (1), the tar-split offset,
//     compressed and uncompressed length, then the magic "GNUlInUx";
//   - LegacyFooterSize (48 bytes), the footer of
//     estargz/zstdchunked and of containers/storage up to v1.46, which
//     stargz-snapshotter still requires: the first four fields, then the
//     magic "GnUlInUx". It has no room for the tar-split's position:
//     readers take that from the tarsplit-position annotation, or find the
//     tar-split as LocateTarSplit does.
//
// Offsets point at the frames' payloads. Negative fields and other sizes
// are a caller error.
func Footer(f toc.Footer) ([]byte, error) {
	fields := []int64{f.TOCOffset, f.TOCLength, f.TOCUncompressedLength, ManifestType}
	magic := zstdChunkedMagic
	switch f.Size {
	case 0, FooterSize:
		fields = append(fields, f.TarSplitOffset, f.TarSplitLength, f.TarSplitUncompressedLength)
	case LegacyFooterSize:
		magic = legacyZstdChunkedMagic
	default:
		return nil, fmt.Errorf("toc: no zstd:chunked footer of %d bytes: %w", f.Size, toc.ErrInvalidFooter)
	}
	payload := make([]byte, 0, 8*len(fields)+len(magic))
	for i, v := range fields {
		if v < 0 {
			return nil, fmt.Errorf("toc: zstd:chunked footer field %d is negative (%d): %w", i, v, toc.ErrInvalidFooter)
		}
		payload = binary.LittleEndian.AppendUint64(payload, uint64(v))
	}
	payload = append(payload, magic[:]...)
	return AppendSkippableFrame(nil, payload)
}

func parseZstdChunkedFooter(tail []byte) (toc.Footer, bool, error) {
	return parseZstdChunkedFooterFrame(tail, FooterSize)
}

func parseLegacyZstdChunkedFooter(tail []byte) (toc.Footer, bool, error) {
	return parseZstdChunkedFooterFrame(tail, LegacyFooterSize)
}

// parseZstdChunkedFooterFrame recognises a footer frame of the given size
// at the end of tail: a skippable frame header announcing exactly the
// rest, and a payload ending in either magic.
func parseZstdChunkedFooterFrame(tail []byte, size int) (toc.Footer, bool, error) {
	if len(tail) < size {
		return toc.Footer{}, false, nil
	}
	b := tail[len(tail)-size:]
	payload, n, err := ParseSkippableFrame(b)
	if err != nil || n != size {
		return toc.Footer{}, false, nil
	}
	magic := payload[len(payload)-8:]
	if !bytes.Equal(magic, zstdChunkedMagic[:]) && !bytes.Equal(magic, legacyZstdChunkedMagic[:]) {
		return toc.Footer{}, false, nil
	}
	var fields [7]int64
	for i := range (len(payload) - 8) / 8 {
		v := binary.LittleEndian.Uint64(payload[8*i:])
		if v > math.MaxInt64 {
			return toc.Footer{}, false, fmt.Errorf("toc: zstd:chunked footer field %d (%d) out of range: %w", i, v, toc.ErrInvalidFooter)
		}
		fields[i] = int64(v)
	}
	if fields[3] != ManifestType {
		return toc.Footer{}, false, fmt.Errorf("toc: zstd:chunked footer: manifest type %d, want %d: %w", fields[3], ManifestType, toc.ErrInvalidFooter)
	}
	f := toc.Footer{
		Format:                     toc.FormatZstdChunked,
		Size:                       size,
		TOCOffset:                  fields[0],
		TOCLength:                  fields[1],
		TOCUncompressedLength:      fields[2],
		TarSplitOffset:             fields[4],
		TarSplitLength:             fields[5],
		TarSplitUncompressedLength: fields[6],
	}
	if err := checkZstdChunkedPositions(f); err != nil {
		return toc.Footer{}, false, fmt.Errorf("toc: zstd:chunked footer: %w: %w", err, toc.ErrInvalidFooter)
	}
	return f, true, nil
}

// checkZstdChunkedPositions checks what can be checked of the frame
// positions without the blob size: each payload follows its 8-byte frame
// header, ends before 2^63, and the tar-split (if any) does not overlap the
// TOC; and each frame's compressed and uncompressed lengths are ones zstd
// can turn into each other (an uncompressed length of 0 is unknown).
func checkZstdChunkedPositions(f toc.Footer) error {
	if f.TOCOffset < SkippableFrameHeaderSize || f.TOCLength <= 0 || f.TOCLength > math.MaxInt64-f.TOCOffset {
		return fmt.Errorf("TOC at %d, %d bytes: impossible position", f.TOCOffset, f.TOCLength)
	}
	if f.TOCUncompressedLength <= 0 {
		return fmt.Errorf("TOC uncompressed length %d", f.TOCUncompressedLength)
	}
	if !zstdLengths(f.TOCLength, f.TOCUncompressedLength) {
		return fmt.Errorf("TOC of %d bytes cannot compress to %d", f.TOCUncompressedLength, f.TOCLength)
	}
	if f.TarSplitOffset == 0 && f.TarSplitLength == 0 && f.TarSplitUncompressedLength == 0 {
		return nil
	}
	if f.TarSplitOffset < SkippableFrameHeaderSize || f.TarSplitLength <= 0 || f.TarSplitLength > math.MaxInt64-f.TarSplitOffset {
		return fmt.Errorf("tar-split at %d, %d bytes: impossible position", f.TarSplitOffset, f.TarSplitLength)
	}
	if f.TarSplitUncompressedLength < 0 || f.TarSplitUncompressedLength > 0 && !zstdLengths(f.TarSplitLength, f.TarSplitUncompressedLength) {
		return fmt.Errorf("tar-split of %d bytes cannot compress to %d", f.TarSplitUncompressedLength, f.TarSplitLength)
	}
	tocFrame, tsFrame := f.TOCOffset-SkippableFrameHeaderSize, f.TarSplitOffset-SkippableFrameHeaderSize
	if tocFrame < f.TarSplitOffset+f.TarSplitLength && tsFrame < f.TOCOffset+f.TOCLength {
		return fmt.Errorf("TOC frame at %d and tar-split frame at %d overlap", tocFrame, tsFrame)
	}
	return nil
}

// zstdLengths reports whether zstd can compress uncompressed bytes to
// compressed ones: no byte expands beyond maxZstdRatio, and stored blocks
// add a few bytes per 128 KiB (maxZstdCompressed).
func zstdLengths(compressed, uncompressed int64) bool {
	return uncompressed/maxZstdRatio <= compressed && compressed <= maxZstdCompressed(uncompressed)
}

// maxZstdCompressed returns the most bytes a zstd frame of n
// uncompressed bytes takes: a frame of stored blocks with its headers,
// rounded up generously.
func maxZstdCompressed(n int64) int64 { return n + n/64 + 64<<10 }

// CheckFooter checks that the frames f locates (from a footer
// or from annotations) lie inside a blob of blobSize bytes, before its
// footer, and that the data before them is not empty.
func CheckFooter(f toc.Footer, blobSize int64) error {
	if f.Format != toc.FormatZstdChunked {
		return fmt.Errorf("toc: footer of format %s is not zstd:chunked: %w", f.Format, toc.ErrInvalidFooter)
	}
	if err := checkZstdChunkedPositions(f); err != nil {
		return fmt.Errorf("toc: zstd:chunked: %w: %w", err, toc.ErrInvalidFooter)
	}
	end := blobSize - int64(f.Size)
	if f.TOCOffset+f.TOCLength > end || f.TarSplitOffset+f.TarSplitLength > end {
		return fmt.Errorf("toc: zstd:chunked: TOC or tar-split runs past offset %d of a %d-byte blob: %w", end, blobSize, toc.ErrInvalidFooter)
	}
	return nil
}

// LocateTarSplit returns f, read from a footer that does not
// locate the tar-split (the 48-byte one), with the tar-split where every
// writer puts it: in the skippable frame that follows the TOC's and runs
// up to the footer. Its uncompressed length stays 0, unknown. f comes
// back unchanged when it locates a tar-split already, when it does not
// come from a footer (Size 0), or when no frame fits between the TOC and
// the footer (estargz/zstdchunked writes no tar-split). Nothing is
// checked here: the frame header is checked when its bytes arrive, and
// the payload is only used if the TOC pins its digest.
func LocateTarSplit(f toc.Footer, blobSize int64) toc.Footer {
	if f.Format != toc.FormatZstdChunked || f.Size == 0 || f.TarSplitOffset != 0 || f.TarSplitLength != 0 ||
		blobSize < int64(f.Size) || f.TOCOffset < 0 || f.TOCLength < 0 || f.TOCLength > math.MaxInt64-f.TOCOffset {
		return f
	}
	frame, end := f.TOCOffset+f.TOCLength, blobSize-int64(f.Size)
	if end-frame <= SkippableFrameHeaderSize {
		return f
	}
	f.TarSplitOffset = frame + SkippableFrameHeaderSize
	f.TarSplitLength = end - f.TarSplitOffset
	return f
}

// CheckTarSplitPosition checks the tar-split frame that f locates against
// t, the decoded and verified TOC that pins it, so that a reader can refuse
// a footer's (or annotation's) claims before fetching a byte of the
// tar-split: its lengths must fit what t's entries can need
// (MaxTarSplitSizeFor; otherwise the error wraps ErrTarSplitTooLarge), and
// the frame must lie after the data frames t's chunks describe (otherwise
// ErrInvalidFooter). A blob without a tar-split passes.
func CheckTarSplitPosition(f toc.Footer, t *toc.TOC) error {
	if f.TarSplitLength == 0 {
		return nil
	}
	limit := MaxTarSplitSizeFor(t)
	if f.TarSplitUncompressedLength > limit || f.TarSplitLength > maxZstdCompressed(limit) {
		return fmt.Errorf("toc: zstd:chunked tar-split of %d bytes (%d compressed) for %d TOC entries, which need at most %d: %w",
			f.TarSplitUncompressedLength, f.TarSplitLength, len(t.Entries), limit, ErrTarSplitTooLarge)
	}
	var dataEnd int64
	for _, e := range t.Entries {
		for _, c := range e.Chunks {
			dataEnd = max(dataEnd, c.FrameEnd)
		}
	}
	if frame := f.TarSplitOffset - SkippableFrameHeaderSize; frame < dataEnd {
		return fmt.Errorf("toc: zstd:chunked tar-split frame at %d overlaps data frames ending at %d: %w", frame, dataEnd, toc.ErrInvalidFooter)
	}
	return nil
}

// Annotations returns the layer descriptor annotations of a
// zstd:chunked layer whose compressed TOC has digest tocDigest, whose
// compressed tar-split has digest tarSplitDigest, and whose frames f
// locates, in the spellings of every generation of readers:
//
//   - the manifest checksum and position under the current keys
//     (containers/storage since v1.44) and under the first ones
//     (io.containers.zstd-chunked.*: containers/storage up to v1.43, as in
//     podman 4.3, and estargz/zstdchunked);
//   - the tar-split position, when f locates a tar-split;
//   - the tar-split checksum, when tarSplitDigest is set too, which
//     containers/storage v1.47 to v1.53 require beside the position (later
//     versions read the digest from the TOC and ignore it).
func Annotations(tocDigest, tarSplitDigest digest.Digest, f toc.Footer) map[string]string {
	position := fmt.Sprintf("%d:%d:%d:%d", f.TOCOffset, f.TOCLength, f.TOCUncompressedLength, ManifestType)
	a := map[string]string{
		AnnotationManifestChecksum:       tocDigest.String(),
		AnnotationManifestPosition:       position,
		LegacyAnnotationManifestChecksum: tocDigest.String(),
		LegacyAnnotationManifestPosition: position,
	}
	if f.TarSplitOffset != 0 {
		a[AnnotationTarSplitPosition] = fmt.Sprintf("%d:%d:%d", f.TarSplitOffset, f.TarSplitLength, f.TarSplitUncompressedLength)
		if tarSplitDigest != "" {
			a[AnnotationTarSplitChecksum] = tarSplitDigest.String()
		}
	}
	return a
}

// ParseAnnotations reads the zstd:chunked annotations of a layer
// descriptor: the digest of the compressed TOC and the positions of the TOC
// and tar-split frames, returned as a Footer of Size 0 (a reader that has
// them need not fetch the footer). The checksum and manifest position are
// required, each under its current key or its first one
// (io.containers.zstd-chunked.*); without them the error wraps
// ErrMissingAnnotation. A value given under both keys must be the same
// under both: layers whose two spellings disagree would show different
// readers different TOCs, and are refused. The tar-split position is
// optional; the tar-split checksum is not read (the TOC pins the
// tar-split). Values are parsed strictly: unsigned decimal fields, nothing
// else. Malformed or disagreeing values yield an error wrapping
// ErrInvalidAnnotation.
func ParseAnnotations(a map[string]string) (tocDigest digest.Digest, f toc.Footer, err error) {
	checksumKey, s, err := zstdChunkedAnnotation(a, AnnotationManifestChecksum, LegacyAnnotationManifestChecksum)
	if err != nil {
		return "", toc.Footer{}, err
	}
	if tocDigest, err = digest.Parse(s); err != nil {
		return "", toc.Footer{}, fmt.Errorf("toc: annotation %q: %w: %w", checksumKey, toc.ErrInvalidAnnotation, err)
	}
	positionKey, pos, err := zstdChunkedAnnotation(a, AnnotationManifestPosition, LegacyAnnotationManifestPosition)
	if err != nil {
		return "", toc.Footer{}, err
	}
	m, err := untrusted.Decimals(pos, 4)
	if err != nil {
		return "", toc.Footer{}, fmt.Errorf("toc: annotation %q: %w: %w", positionKey, err, toc.ErrInvalidAnnotation)
	}
	if m[3] != ManifestType {
		return "", toc.Footer{}, fmt.Errorf("toc: annotation %q: manifest type %d, want %d: %w", positionKey, m[3], ManifestType, toc.ErrInvalidAnnotation)
	}
	f = toc.Footer{Format: toc.FormatZstdChunked, TOCOffset: m[0], TOCLength: m[1], TOCUncompressedLength: m[2]}
	if pos, ok := a[AnnotationTarSplitPosition]; ok {
		ts, err := untrusted.Decimals(pos, 3)
		if err != nil {
			return "", toc.Footer{}, fmt.Errorf("toc: annotation %q: %w: %w", AnnotationTarSplitPosition, err, toc.ErrInvalidAnnotation)
		}
		f.TarSplitOffset, f.TarSplitLength, f.TarSplitUncompressedLength = ts[0], ts[1], ts[2]
	}
	if err := checkZstdChunkedPositions(f); err != nil {
		return "", toc.Footer{}, fmt.Errorf("toc: zstd:chunked annotations: %w: %w", err, toc.ErrInvalidAnnotation)
	}
	return tocDigest, f, nil
}

// zstdChunkedAnnotation returns the value of a zstd:chunked annotation
// spelled key or legacyKey, and the key it was found under. Both
// spellings present with different values are an error wrapping
// ErrInvalidAnnotation; neither, one wrapping ErrMissingAnnotation.
func zstdChunkedAnnotation(a map[string]string, key, legacyKey string) (string, string, error) {
	v, ok := a[key]
	lv, lok := a[legacyKey]
	switch {
	case ok && lok && v != lv:
		return "", "", fmt.Errorf("toc: annotations %q and %q disagree (%q, %q): %w",
			key, legacyKey, untrusted.Short(v), untrusted.Short(lv), toc.ErrInvalidAnnotation)
	case ok:
		return key, v, nil
	case lok:
		return legacyKey, lv, nil
	}
	return "", "", fmt.Errorf("toc: annotation %q: %w", key, toc.ErrMissingAnnotation)
}

// ParseFooter decodes the footer frame at the end of tail, the
// last len(tail) bytes of a blob, in either layout: the 72-byte one of
// containers/storage and the legacy 48-byte one. A tail that ends in
// neither is an error wrapping ErrNoFooter and ErrInvalidFooter; a footer
// that matches a layout but is malformed yields an error wrapping
// ErrInvalidFooter only.
func ParseFooter(tail []byte) (toc.Footer, error) {
	for _, parse := range []func([]byte) (toc.Footer, bool, error){parseZstdChunkedFooter, parseLegacyZstdChunkedFooter} {
		f, ok, err := parse(tail)
		if err != nil {
			return toc.Footer{}, err
		}
		if ok {
			return f, nil
		}
	}
	return toc.Footer{}, fmt.Errorf("toc: last %d bytes: no zstd:chunked footer: %w: %w", len(tail), toc.ErrNoFooter, toc.ErrInvalidFooter)
}
