package toc

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"strings"
	"time"

	"github.com/vbatts/tar-split/archive/tar"
)

const tarBlockSize = 512

// tarHeaderReader parses the tar header at the start of each tar-split
// segment it is given. The zero value is ready to use.
type tarHeaderReader struct {
	block []tar.Header // unused headers of the current allocation
}

// read parses the tar header at the start of seg, a tar-split segment
// without the previous entry's padding, as archive/tar's Reader.Next does,
// and returns it with the padding that follows the entry's contents. At
// the end-of-archive blocks the error is io.EOF.
//
// Most headers are a single USTAR or GNU block, which parsePlainTarHeader
// reads several times faster than a tar.Reader, into headers allocated in
// blocks; it leaves every other header to archive/tar, and fills only the
// fields CheckTarSplit compares.
func (r *tarHeaderReader) read(seg []byte) (hdr *tar.Header, padding int64, err error) {
	if len(r.block) == 0 {
		r.block = make([]tar.Header, allocBlockSize)
	}
	if padding, ok := parsePlainTarHeader(seg, &r.block[0]); ok {
		hdr, r.block = &r.block[0], r.block[1:]
		return hdr, padding, nil
	}
	tr := tar.NewReader(bytes.NewReader(seg))
	if hdr, err = tr.Next(); err != nil {
		return nil, 0, err
	}
	return hdr, tr.ExpectedPadding(), nil
}

// parsePlainTarHeader parses into hdr a header that is one USTAR or GNU
// block of a regular file, hard or symbolic link, device, directory or
// FIFO, with octal numbers only and, for GNU, without access or change
// times. It sets Name, Linkname, Typeflag, Mode, Uid, Gid, Size, ModTime,
// Devmajor and Devminor exactly as archive/tar does (and no other field),
// and reports false, leaving hdr alone, for anything else, including
// blocks archive/tar would reject.
func parsePlainTarHeader(seg []byte, hdr *tar.Header) (padding int64, ok bool) {
	if len(seg) < tarBlockSize {
		return 0, false
	}
	b := seg[:tarBlockSize:tarBlockSize]
	if b[0] == 0 {
		return 0, false // an empty name, or the end-of-archive blocks
	}
	typeflag := b[156]
	switch typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
	default:
		return 0, false // extension headers, sparse files, vendor types
	}
	if !validTarChecksum(b) {
		return 0, false
	}
	magic, version := string(b[257:263]), string(b[263:265])
	switch {
	case magic == "ustar\x00" && string(b[508:512]) == "tar\x00":
		return 0, false // star, with its own time fields
	case magic == "ustar\x00":
	case magic == "ustar " && version == " \x00":
		if b[345] != 0 || b[357] != 0 {
			return 0, false // GNU access and change times
		}
	default:
		return 0, false // V7
	}
	var numbers [7]int64
	for i, field := range [...][]byte{b[100:108], b[108:116], b[116:124], b[124:136], b[136:148], b[329:337], b[337:345]} {
		if numbers[i], ok = parseTarOctal(field); !ok {
			return 0, false
		}
	}
	name := tarString(b[0:100])
	if magic == "ustar\x00" {
		if prefix := tarString(b[345:500]); prefix != "" {
			name = prefix + "/" + name
		}
	}
	if typeflag == tar.TypeRegA {
		// As archive/tar: legacy archives mark directories with a slash.
		typeflag = tar.TypeReg
		if strings.HasSuffix(name, "/") {
			typeflag = tar.TypeDir
		}
	}
	*hdr = tar.Header{
		Typeflag: typeflag,
		Name:     name,
		Linkname: tarString(b[157:257]),
		Mode:     numbers[0],
		Uid:      int(numbers[1]),
		Gid:      int(numbers[2]),
		Size:     numbers[3],
		ModTime:  time.Unix(numbers[4], 0),
		Devmajor: numbers[5],
		Devminor: numbers[6],
	}
	contents := hdr.Size
	switch typeflag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		contents = 0 // whatever the size field says
	}
	return -contents & (tarBlockSize - 1), true
}

// validTarChecksum reports whether b's checksum field holds the sum of its
// bytes (the field itself counted as spaces), as unsigned or signed bytes.
func validTarChecksum(b []byte) bool {
	want, ok := parseTarOctal(b[148:156])
	if !ok {
		return false
	}
	// Sum eight bytes at a time, in four 16-bit lanes that cannot
	// overflow over one block, and count the bytes a signed sum would
	// take 256 less for; then count the checksum field as spaces.
	const lowBytes, highBits = 0x00ff00ff00ff00ff, 0x8080808080808080
	var lanes uint64
	var high int
	for i := 0; i < tarBlockSize; i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		lanes += w&lowBytes + w>>8&lowBytes
		high += bits.OnesCount64(w & highBits)
	}
	lanes = lanes&0x0000ffff0000ffff + lanes>>16&0x0000ffff0000ffff
	unsigned := int64(lanes&0xffffffff + lanes>>32)
	for _, c := range b[148:156] {
		unsigned += int64(' ') - int64(c)
		if c >= 0x80 {
			high--
		}
	}
	return want == unsigned || want == unsigned-256*int64(high)
}

// parseTarOctal parses an octal tar field padded with spaces or NULs on
// either side, which archive/tar reads as 0 when empty. It reports false
// for anything else, which archive/tar either rejects or reads otherwise
// (base-256 numbers, digits cut short by a NUL).
func parseTarOctal(field []byte) (int64, bool) {
	padding := func(c byte) bool { return c == ' ' || c == 0 }
	for len(field) > 0 && padding(field[0]) {
		field = field[1:]
	}
	for len(field) > 0 && padding(field[len(field)-1]) {
		field = field[:len(field)-1]
	}
	var n int64
	for _, c := range field { // at most 12 digits: no overflow
		if c < '0' || c > '7' {
			return 0, false
		}
		n = n<<3 | int64(c-'0')
	}
	return n, true
}

// tarString returns a NUL-terminated tar string field.
func tarString(field []byte) string {
	if i := bytes.IndexByte(field, 0); i >= 0 {
		field = field[:i]
	}
	return string(field)
}
