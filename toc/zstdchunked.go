package toc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Layout constants of zstd:chunked blobs.
const (
	// SkippableFrameHeaderSize is the size of a zstd skippable frame's
	// header: a 4-byte magic number and a little-endian 32-bit payload
	// length.
	SkippableFrameHeaderSize = 8

	// ZstdChunkedFooterSize is the size of the footer frame that
	// containers/storage writes: a skippable frame with a 64-byte payload.
	ZstdChunkedFooterSize = SkippableFrameHeaderSize + 64
	// LegacyZstdChunkedFooterSize is the size of the footer frame of the
	// first zstd:chunked writers (stargz-snapshotter's estargz/zstdchunked):
	// a skippable frame with a 40-byte payload and no tar-split.
	LegacyZstdChunkedFooterSize = SkippableFrameHeaderSize + 40

	// ZstdChunkedManifestType is the only manifest type zstd:chunked
	// defines ("CRFS"), recorded in the footer and the manifest-position
	// annotation.
	ZstdChunkedManifestType = 1
)

// Layer descriptor annotations of zstd:chunked layers.
const (
	// AnnotationZstdChunkedManifestChecksum pins the digest of the
	// COMPRESSED TOC (the payload of the TOC's skippable frame).
	AnnotationZstdChunkedManifestChecksum = "io.github.containers.zstd-chunked.manifest-checksum"
	// AnnotationZstdChunkedManifestPosition locates the TOC:
	// "offset:length:uncompressedLength:1", offset pointing at the payload.
	AnnotationZstdChunkedManifestPosition = "io.github.containers.zstd-chunked.manifest-position"
	// AnnotationZstdChunkedTarSplitPosition locates the tar-split:
	// "offset:length:uncompressedLength".
	AnnotationZstdChunkedTarSplitPosition = "io.github.containers.zstd-chunked.tarsplit-position"

	// LegacyAnnotationZstdChunkedManifestChecksum and
	// LegacyAnnotationZstdChunkedManifestPosition are the keys the first
	// writer (estargz/zstdchunked) used. ParseZstdChunkedAnnotations
	// falls back to them.
	LegacyAnnotationZstdChunkedManifestChecksum = "io.containers.zstd-chunked.manifest-checksum"
	LegacyAnnotationZstdChunkedManifestPosition = "io.containers.zstd-chunked.manifest-position"
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

// ZstdChunkedFooter returns the 72-byte footer frame containers/storage
// writes: a skippable frame whose payload is, as little-endian uint64s, the
// TOC offset, compressed and uncompressed length, the manifest type (1),
// the tar-split offset, compressed and uncompressed length, then the magic
// "GNUlInUx". Offsets point at the frames' payloads. Negative fields are a
// caller error.
func ZstdChunkedFooter(f Footer) ([]byte, error) {
	fields := []int64{f.TOCOffset, f.TOCLength, f.TOCUncompressedLength, ZstdChunkedManifestType,
		f.TarSplitOffset, f.TarSplitLength, f.TarSplitUncompressedLength}
	payload := make([]byte, 0, ZstdChunkedFooterSize-SkippableFrameHeaderSize)
	for i, v := range fields {
		if v < 0 {
			return nil, fmt.Errorf("toc: zstd:chunked footer field %d is negative (%d): %w", i, v, ErrInvalidFooter)
		}
		payload = binary.LittleEndian.AppendUint64(payload, uint64(v))
	}
	payload = append(payload, zstdChunkedMagic[:]...)
	return AppendSkippableFrame(nil, payload)
}

func parseZstdChunkedFooter(tail []byte) (Footer, bool, error) {
	return parseZstdChunkedFooterFrame(tail, ZstdChunkedFooterSize)
}

func parseLegacyZstdChunkedFooter(tail []byte) (Footer, bool, error) {
	return parseZstdChunkedFooterFrame(tail, LegacyZstdChunkedFooterSize)
}

// parseZstdChunkedFooterFrame recognises a footer frame of the given size
// at the end of tail: a skippable frame header announcing exactly the
// rest, and a payload ending in either magic.
func parseZstdChunkedFooterFrame(tail []byte, size int) (Footer, bool, error) {
	b, ok := lastN(tail, size)
	if !ok {
		return Footer{}, false, nil
	}
	payload, n, err := ParseSkippableFrame(b)
	if err != nil || n != size {
		return Footer{}, false, nil
	}
	magic := payload[len(payload)-8:]
	if !bytes.Equal(magic, zstdChunkedMagic[:]) && !bytes.Equal(magic, legacyZstdChunkedMagic[:]) {
		return Footer{}, false, nil
	}
	var fields [7]int64
	for i := range (len(payload) - 8) / 8 {
		v := binary.LittleEndian.Uint64(payload[8*i:])
		if v > math.MaxInt64 {
			return Footer{}, false, fmt.Errorf("toc: zstd:chunked footer field %d (%d) out of range: %w", i, v, ErrInvalidFooter)
		}
		fields[i] = int64(v)
	}
	if fields[3] != ZstdChunkedManifestType {
		return Footer{}, false, fmt.Errorf("toc: zstd:chunked footer: manifest type %d, want %d: %w", fields[3], ZstdChunkedManifestType, ErrInvalidFooter)
	}
	f := Footer{
		Format:                     FormatZstdChunked,
		Size:                       size,
		TOCOffset:                  fields[0],
		TOCLength:                  fields[1],
		TOCUncompressedLength:      fields[2],
		TarSplitOffset:             fields[4],
		TarSplitLength:             fields[5],
		TarSplitUncompressedLength: fields[6],
	}
	if err := checkZstdChunkedPositions(f); err != nil {
		return Footer{}, false, fmt.Errorf("toc: zstd:chunked footer: %w: %w", err, ErrInvalidFooter)
	}
	return f, true, nil
}

// checkZstdChunkedPositions checks what can be checked of the frame
// positions without the blob size: each payload follows its 8-byte frame
// header, ends before 2^63, and the tar-split (if any) does not overlap the
// TOC.
func checkZstdChunkedPositions(f Footer) error {
	if f.TOCOffset < SkippableFrameHeaderSize || f.TOCLength <= 0 || f.TOCLength > math.MaxInt64-f.TOCOffset {
		return fmt.Errorf("TOC at %d, %d bytes: impossible position", f.TOCOffset, f.TOCLength)
	}
	if f.TOCUncompressedLength <= 0 {
		return fmt.Errorf("TOC uncompressed length %d", f.TOCUncompressedLength)
	}
	if f.TarSplitOffset == 0 && f.TarSplitLength == 0 && f.TarSplitUncompressedLength == 0 {
		return nil
	}
	if f.TarSplitOffset < SkippableFrameHeaderSize || f.TarSplitLength <= 0 || f.TarSplitLength > math.MaxInt64-f.TarSplitOffset {
		return fmt.Errorf("tar-split at %d, %d bytes: impossible position", f.TarSplitOffset, f.TarSplitLength)
	}
	tocFrame, tsFrame := f.TOCOffset-SkippableFrameHeaderSize, f.TarSplitOffset-SkippableFrameHeaderSize
	if tocFrame < f.TarSplitOffset+f.TarSplitLength && tsFrame < f.TOCOffset+f.TOCLength {
		return fmt.Errorf("TOC frame at %d and tar-split frame at %d overlap", tocFrame, tsFrame)
	}
	return nil
}

// CheckZstdChunkedFooter checks that the frames f locates (from a footer
// or from annotations) lie inside a blob of blobSize bytes, before its
// footer, and that the data before them is not empty.
func CheckZstdChunkedFooter(f Footer, blobSize int64) error {
	if f.Format != FormatZstdChunked {
		return fmt.Errorf("toc: footer of format %s is not zstd:chunked: %w", f.Format, ErrInvalidFooter)
	}
	if err := checkZstdChunkedPositions(f); err != nil {
		return fmt.Errorf("toc: zstd:chunked: %w: %w", err, ErrInvalidFooter)
	}
	end := blobSize - int64(f.Size)
	if f.TOCOffset+f.TOCLength > end || f.TarSplitOffset+f.TarSplitLength > end {
		return fmt.Errorf("toc: zstd:chunked: TOC or tar-split runs past offset %d of a %d-byte blob: %w", end, blobSize, ErrInvalidFooter)
	}
	return nil
}

// ZstdChunkedAnnotations returns the layer descriptor annotations of a
// zstd:chunked layer whose compressed TOC has digest tocDigest and whose
// frames f locates, as containers/storage writes them. The tar-split
// position is omitted when f has no tar-split.
func ZstdChunkedAnnotations(tocDigest digest.Digest, f Footer) map[string]string {
	a := map[string]string{
		AnnotationZstdChunkedManifestChecksum: tocDigest.String(),
		AnnotationZstdChunkedManifestPosition: fmt.Sprintf("%d:%d:%d:%d", f.TOCOffset, f.TOCLength, f.TOCUncompressedLength, ZstdChunkedManifestType),
	}
	if f.TarSplitOffset != 0 {
		a[AnnotationZstdChunkedTarSplitPosition] = fmt.Sprintf("%d:%d:%d", f.TarSplitOffset, f.TarSplitLength, f.TarSplitUncompressedLength)
	}
	return a
}

// ParseZstdChunkedAnnotations reads the zstd:chunked annotations of a layer
// descriptor: the digest of the compressed TOC and the positions of the TOC
// and tar-split frames, returned as a Footer of Size 0 (a reader that has
// them need not fetch the footer). The checksum and manifest position are
// required (the keys of estargz/zstdchunked are accepted in their absence);
// without them the error wraps ErrMissingAnnotation. The tar-split position
// is optional. Values are parsed strictly: unsigned decimal fields, nothing
// else; malformed values yield an error wrapping ErrInvalidAnnotation.
func ParseZstdChunkedAnnotations(a map[string]string) (tocDigest digest.Digest, f Footer, err error) {
	checksumKey, positionKey := AnnotationZstdChunkedManifestChecksum, AnnotationZstdChunkedManifestPosition
	if _, ok := a[checksumKey]; !ok {
		checksumKey, positionKey = LegacyAnnotationZstdChunkedManifestChecksum, LegacyAnnotationZstdChunkedManifestPosition
	}
	s, ok := a[checksumKey]
	if !ok {
		return "", Footer{}, fmt.Errorf("toc: annotation %q: %w", AnnotationZstdChunkedManifestChecksum, ErrMissingAnnotation)
	}
	if tocDigest, err = digest.Parse(s); err != nil {
		return "", Footer{}, fmt.Errorf("toc: annotation %q: %w: %w", checksumKey, ErrInvalidAnnotation, err)
	}
	pos, ok := a[positionKey]
	if !ok {
		return "", Footer{}, fmt.Errorf("toc: annotation %q: %w", positionKey, ErrMissingAnnotation)
	}
	m, err := parsePosition(pos, 4)
	if err != nil {
		return "", Footer{}, fmt.Errorf("toc: annotation %q: %w", positionKey, err)
	}
	if m[3] != ZstdChunkedManifestType {
		return "", Footer{}, fmt.Errorf("toc: annotation %q: manifest type %d, want %d: %w", positionKey, m[3], ZstdChunkedManifestType, ErrInvalidAnnotation)
	}
	f = Footer{Format: FormatZstdChunked, TOCOffset: m[0], TOCLength: m[1], TOCUncompressedLength: m[2]}
	if pos, ok := a[AnnotationZstdChunkedTarSplitPosition]; ok {
		ts, err := parsePosition(pos, 3)
		if err != nil {
			return "", Footer{}, fmt.Errorf("toc: annotation %q: %w", AnnotationZstdChunkedTarSplitPosition, err)
		}
		f.TarSplitOffset, f.TarSplitLength, f.TarSplitUncompressedLength = ts[0], ts[1], ts[2]
	}
	if err := checkZstdChunkedPositions(f); err != nil {
		return "", Footer{}, fmt.Errorf("toc: zstd:chunked annotations: %w: %w", err, ErrInvalidAnnotation)
	}
	return tocDigest, f, nil
}

// parsePosition parses n colon-separated unsigned decimal integers.
func parsePosition(s string, n int) ([]int64, error) {
	parts := strings.Split(s, ":")
	if len(parts) != n {
		return nil, fmt.Errorf("%q has %d fields, want %d: %w", s, len(parts), n, ErrInvalidAnnotation)
	}
	v := make([]int64, n)
	for i, p := range parts {
		// ParseInt alone would accept a sign.
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return nil, fmt.Errorf("%q: field %d is not a decimal number: %w", s, i, ErrInvalidAnnotation)
		}
		x, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: field %d out of range: %w", s, i, ErrInvalidAnnotation)
		}
		v[i] = x
	}
	return v, nil
}
