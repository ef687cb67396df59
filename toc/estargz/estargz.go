package estargz

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/lazylayer/lazylayer/toc"

	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
)

// Names and values fixed by the eStargz format.
const (
	// TOCTarName is the name of the tar entry that holds the eStargz TOC
	// JSON, the last entry of the layer's tar stream.
	TOCTarName = "stargz.index.json"

	// LandmarkDigest is the digest of a landmark's contents.
	LandmarkDigest = "sha256:dc0e9c3658a1a3ed1ec94274d8b19925c93e1abb7ddba294923ad9bde30f8cb8"

	// AnnotationTOCDigest is the layer descriptor annotation that
	// pins the digest of the TOC JSON.
	AnnotationTOCDigest = "containerd.io/snapshot/stargz/toc.digest"
	// AnnotationUncompressedSize is the layer descriptor annotation giving
	// the size of the uncompressed tar stream, in decimal.
	AnnotationUncompressedSize = "io.containers.estargz.uncompressed-size"
)

// Footer sizes of the eStargz variants.
const (
	// FooterSize is the size of the eStargz footer: an empty gzip
	// member whose extra field holds the subfield "SG" with the payload
	// "%016xSTARGZ" (the TOC offset).
	FooterSize = 51
	// LegacyFooterSize is the size of the original stargz (CRFS)
	// footer, whose extra field is the bare "%016xSTARGZ".
	LegacyFooterSize = 47
	// ExternalTOCFooterSize is the size of the footer of an eStargz
	// blob whose TOC is stored elsewhere; its "SG" subfield holds
	// "STARGZEXTERNALTOC".
	ExternalTOCFooterSize = 46
)

// landmarkContent is the single byte a landmark file holds.
const landmarkContent = 0x0f

// LandmarkContents returns the contents of a landmark file (a fresh copy on
// each call).
func LandmarkContents() []byte { return []byte{landmarkContent} }

const (
	stargzMagic      = "STARGZ"
	externalTOCMagic = "STARGZEXTERNALTOC"
	hexOffsetLen     = 16
)

// emptyDeflateAndTrailer ends every eStargz footer: a final stored deflate
// block of length 0, then CRC-32 and ISIZE of the empty content (both 0).
var emptyDeflateAndTrailer = [13]byte{0x01, 0x00, 0x00, 0xff, 0xff}

// emptyGzipMember encodes an empty gzip member whose header carries extra,
// laid out exactly as eStargz footers are: FEXTRA only, MTIME 0, XFL 0,
// OS 255 (unknown).
func emptyGzipMember(extra []byte) []byte {
	b := make([]byte, 0, 12+len(extra)+len(emptyDeflateAndTrailer))
	b = append(b, 0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, 0xff)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(extra)))
	b = append(b, extra...)
	return append(b, emptyDeflateAndTrailer[:]...)
}

// gzipMemberExtra returns the extra field of b if b is exactly one empty
// gzip member with only the FEXTRA flag set. MTIME, XFL and OS are not
// checked: they carry no meaning for the footer.
func gzipMemberExtra(b []byte) ([]byte, bool) {
	const headerLen = 12 // fixed header plus XLEN
	if len(b) < headerLen+len(emptyDeflateAndTrailer) {
		return nil, false
	}
	if b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 || b[3] != 0x04 {
		return nil, false
	}
	extraLen := int(binary.LittleEndian.Uint16(b[10:12]))
	if headerLen+extraLen+len(emptyDeflateAndTrailer) != len(b) {
		return nil, false
	}
	if !bytes.Equal(b[headerLen+extraLen:], emptyDeflateAndTrailer[:]) {
		return nil, false
	}
	return b[headerLen : headerLen+extraLen], true
}

// sgSubfield returns the payload of extra if extra is exactly one "SG"
// subfield.
func sgSubfield(extra []byte) ([]byte, bool) {
	if len(extra) < 4 || extra[0] != 'S' || extra[1] != 'G' {
		return nil, false
	}
	if int(binary.LittleEndian.Uint16(extra[2:4])) != len(extra)-4 {
		return nil, false
	}
	return extra[4:], true
}

// lastN returns the last n bytes of b, or false if b is shorter.
func lastN(b []byte, n int) ([]byte, bool) {
	if len(b) < n {
		return nil, false
	}
	return b[len(b)-n:], true
}

// Footer returns the 51-byte footer of an eStargz blob whose TOC
// member starts at tocOffset, which must not be negative.
func Footer(tocOffset int64) []byte {
	extra := make([]byte, 0, 4+hexOffsetLen+len(stargzMagic))
	extra = append(extra, 'S', 'G')
	extra = binary.LittleEndian.AppendUint16(extra, uint16(hexOffsetLen+len(stargzMagic)))
	// A negative offset is a caller bug; formatting it unsigned keeps the
	// footer 51 bytes long, and ParseFooter rejects the result.
	extra = fmt.Appendf(extra, "%016x%s", uint64(tocOffset), stargzMagic)
	return emptyGzipMember(extra)
}

// ExternalTOCFooter returns the 46-byte footer of an eStargz blob
// whose TOC is stored outside the blob.
func ExternalTOCFooter() []byte {
	extra := make([]byte, 0, 4+len(externalTOCMagic))
	extra = append(extra, 'S', 'G')
	extra = binary.LittleEndian.AppendUint16(extra, uint16(len(externalTOCMagic)))
	extra = append(extra, externalTOCMagic...)
	return emptyGzipMember(extra)
}

// parseStargzPayload decodes "%016xSTARGZ". ok is false without the magic;
// an error means the magic is there but the offset is not 16 hex digits.
func parseStargzPayload(p []byte, footerSize int) (toc.Footer, bool, error) {
	if len(p) != hexOffsetLen+len(stargzMagic) || string(p[hexOffsetLen:]) != stargzMagic {
		return toc.Footer{}, false, nil
	}
	hex := p[:hexOffsetLen]
	for _, c := range hex {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return toc.Footer{}, false, fmt.Errorf("toc: estargz footer: TOC offset %q is not 16 hex digits: %w", hex, toc.ErrInvalidFooter)
		}
	}
	off, err := strconv.ParseUint(string(hex), 16, 63)
	if err != nil {
		return toc.Footer{}, false, fmt.Errorf("toc: estargz footer: TOC offset %q out of range: %w", hex, toc.ErrInvalidFooter)
	}
	return toc.Footer{Format: toc.FormatEStargz, Size: footerSize, TOCOffset: int64(off)}, true, nil
}

func parseEStargzFooter(tail []byte) (toc.Footer, bool, error) {
	b, ok := lastN(tail, FooterSize)
	if !ok {
		return toc.Footer{}, false, nil
	}
	extra, ok := gzipMemberExtra(b)
	if !ok {
		return toc.Footer{}, false, nil
	}
	p, ok := sgSubfield(extra)
	if !ok {
		return toc.Footer{}, false, nil
	}
	return parseStargzPayload(p, FooterSize)
}

func parseLegacyEStargzFooter(tail []byte) (toc.Footer, bool, error) {
	b, ok := lastN(tail, LegacyFooterSize)
	if !ok {
		return toc.Footer{}, false, nil
	}
	extra, ok := gzipMemberExtra(b)
	if !ok {
		return toc.Footer{}, false, nil
	}
	return parseStargzPayload(extra, LegacyFooterSize)
}

func parseEStargzExternalTOCFooter(tail []byte) (toc.Footer, bool, error) {
	b, ok := lastN(tail, ExternalTOCFooterSize)
	if !ok {
		return toc.Footer{}, false, nil
	}
	extra, ok := gzipMemberExtra(b)
	if !ok {
		return toc.Footer{}, false, nil
	}
	if p, ok := sgSubfield(extra); !ok || string(p) != externalTOCMagic {
		return toc.Footer{}, false, nil
	}
	return toc.Footer{Format: toc.FormatEStargz, Size: ExternalTOCFooterSize, ExternalTOC: true}, true, nil
}

// Annotations returns the layer descriptor annotations of an eStargz
// layer with the given TOC digest and uncompressed tar size (the size of
// everything the blob decompresses to, TOC entry included).
func Annotations(tocDigest digest.Digest, uncompressedSize int64) map[string]string {
	return map[string]string{
		AnnotationTOCDigest:        tocDigest.String(),
		AnnotationUncompressedSize: strconv.FormatInt(uncompressedSize, 10),
	}
}

// ParseAnnotations reads the eStargz annotations of a layer
// descriptor. The TOC digest is required: without it the error wraps
// ErrMissingAnnotation (the layer is not eStargz, or not verifiable). The
// uncompressed size is optional; it is -1 when absent. Malformed values
// yield an error wrapping ErrInvalidAnnotation.
func ParseAnnotations(a map[string]string) (tocDigest digest.Digest, uncompressedSize int64, err error) {
	s, ok := a[AnnotationTOCDigest]
	if !ok {
		return "", 0, fmt.Errorf("toc: annotation %q: %w", AnnotationTOCDigest, toc.ErrMissingAnnotation)
	}
	tocDigest, err = digest.Parse(s)
	if err != nil {
		return "", 0, fmt.Errorf("toc: annotation %q: %w: %w", AnnotationTOCDigest, toc.ErrInvalidAnnotation, err)
	}
	uncompressedSize = -1
	if s, ok := a[AnnotationUncompressedSize]; ok {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return "", 0, fmt.Errorf("toc: annotation %q: %q is not a size: %w", AnnotationUncompressedSize, untrusted.Short(s), toc.ErrInvalidAnnotation)
		}
		uncompressedSize = n
	}
	return tocDigest, uncompressedSize, nil
}

// ParseFooter decodes the footer at the end of tail, the last
// len(tail) bytes of a blob, in any of the eStargz layouts: the 51-byte
// footer, the legacy 47-byte one and the 46-byte external-TOC one. A tail
// that ends in none of them is an error wrapping ErrNoFooter and
// ErrInvalidFooter; a footer that matches a layout but is malformed
// yields an error wrapping ErrInvalidFooter only.
func ParseFooter(tail []byte) (toc.Footer, error) {
	for _, parse := range []func([]byte) (toc.Footer, bool, error){parseEStargzFooter, parseLegacyEStargzFooter, parseEStargzExternalTOCFooter} {
		f, ok, err := parse(tail)
		if err != nil {
			return toc.Footer{}, err
		}
		if ok {
			return f, nil
		}
	}
	return toc.Footer{}, fmt.Errorf("toc: last %d bytes: no eStargz footer: %w: %w", len(tail), toc.ErrNoFooter, toc.ErrInvalidFooter)
}
