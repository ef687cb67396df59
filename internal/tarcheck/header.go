package tarcheck

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
	"time"

	"github.com/lazylayer/lazylayer/internal/untrusted"
)

// BlockSize is the size of a tar block.
const BlockSize = 512

// PAXXattr prefixes the PAX records of extended attributes.
const PAXXattr = "SCHILY.xattr."

// ParseHeaders parses b, one entry's tar headers and nothing more, into
// hdr, as archive/tar's Reader.Next does. Before the header block it
// accepts at most one PAX header, one GNU long-name and one GNU long-link
// header, each of which tar readers let override another's fields in
// their own order; it refuses what a tar reader would read as more than
// one entry, or read otherwise than an index can describe.
//
// Most headers are a single USTAR or GNU block, which parsePlainHeader
// reads several times faster than a tar.Reader; it fills only the fields
// Compare compares. Failures wrap errs.Mismatch, or errs.Invalid where
// archive/tar rejects the headers.
func ParseHeaders(b []byte, hdr *tar.Header, errs Sentinels) error {
	if len(b) == BlockSize && parsePlainHeader(b, hdr) {
		return nil
	}
	const extensions = "xLK" // PAX, GNU long name, GNU long link
	var seen [len(extensions)]bool
	pos := 0
	for {
		if len(b)-pos < BlockSize {
			return fmt.Errorf("%d bytes of tar headers end inside a block: %w", len(b), errs.Mismatch)
		}
		flag := b[pos+156]
		if flag == tar.TypeXGlobalHeader {
			return fmt.Errorf("global PAX header, which tar readers apply to all later entries: %w", errs.Mismatch)
		}
		i := strings.IndexByte(extensions, flag)
		if i < 0 {
			break
		}
		size, ok := parseOctal(b[pos+124 : pos+136])
		if seen[i] || !ok || size > int64(len(b)) {
			return fmt.Errorf("a second %q header, or one of unusual size: %w", flag, errs.Mismatch)
		}
		seen[i] = true
		pos += BlockSize + int((size+BlockSize-1)&^(BlockSize-1))
	}
	if extra := len(b) - pos - BlockSize; extra != 0 {
		return fmt.Errorf("%d bytes after a tar header, before its data: %w", extra, errs.Mismatch)
	}
	if last := b[pos:]; string(last[257:263]) == "ustar\x00" && string(last[508:512]) == "tar\x00" {
		// GNU tar and archive/tar tell star headers from POSIX ones
		// differently, and so read their name prefixes differently.
		return fmt.Errorf("star header: %w", errs.Mismatch)
	}
	r := bytes.NewReader(b)
	h, err := tar.NewReader(r).Next()
	if err != nil {
		return fmt.Errorf("tar header: %w: %w", errs.Invalid, err)
	}
	if r.Len() != 0 {
		return fmt.Errorf("archive/tar reads %d bytes of %d as tar headers: %w", len(b)-r.Len(), len(b), errs.Mismatch)
	}
	*hdr = *h
	if hdr.Typeflag == tar.TypeGNUSparse {
		return fmt.Errorf("sparse file: %w", errs.Mismatch)
	}
	for k := range hdr.PAXRecords {
		if unrepresentablePAX(k) {
			return fmt.Errorf("PAX record %q: %w", untrusted.Short(k), errs.Mismatch)
		}
	}
	// GNU tar lets PAX records override long names, archive/tar the
	// reverse.
	_, path := hdr.PAXRecords["path"]
	_, linkpath := hdr.PAXRecords["linkpath"]
	if seen[1] && path || seen[2] && linkpath {
		return fmt.Errorf("both a GNU long name and a PAX record spell a name: %w", errs.Mismatch)
	}
	return nil
}

// unrepresentablePAX reports whether a PAX record carries what tar readers
// act on and an index cannot describe: the layout of sparse files, and
// metadata that GNU tar or libarchive restore (ACLs, file flags, SELinux
// labels, libarchive's own xattrs). Other unknown records (comments,
// inode numbers) change nothing a reader extracts.
func unrepresentablePAX(key string) bool {
	for _, prefix := range []string{"GNU.sparse.", "SCHILY.acl.", "LIBARCHIVE.xattr.", "SCHILY.fflags", "RHT.security.selinux"} {
		if strings.HasPrefix(key, prefix) {
			return true
		}
	}
	return false
}

// parsePlainHeader parses into hdr a header block b that is one USTAR
// or GNU block of a regular file, hard or symbolic link, device,
// directory or FIFO, with octal numbers only and, for GNU, without access
// or change times. It sets Name, Linkname, Uname, Gname, Typeflag, Mode, Uid, Gid, Size,
// ModTime, Devmajor and Devminor exactly as archive/tar does (and no other
// field), and reports false, leaving hdr alone, for anything else,
// including blocks archive/tar would reject.
func parsePlainHeader(b []byte, hdr *tar.Header) bool {
	if len(b) != BlockSize {
		return false
	}
	if b[0] == 0 {
		return false // an empty name, or the end-of-archive blocks
	}
	typeflag := b[156]
	switch typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
	default:
		return false // extension headers, sparse files, vendor types
	}
	if !validChecksum(b) {
		return false
	}
	magic, version := string(b[257:263]), string(b[263:265])
	switch {
	case magic == "ustar\x00" && string(b[508:512]) == "tar\x00":
		return false // star, with its own time fields
	case magic == "ustar\x00":
	case magic == "ustar " && version == " \x00":
		if b[345] != 0 || b[357] != 0 {
			return false // GNU access and change times
		}
	default:
		return false // V7
	}
	var numbers [7]int64
	for i, field := range [...][]byte{b[100:108], b[108:116], b[116:124], b[124:136], b[136:148], b[329:337], b[337:345]} {
		var ok bool
		if numbers[i], ok = parseOctal(field); !ok {
			return false
		}
	}
	name := cString(b[0:100])
	if magic == "ustar\x00" {
		if prefix := cString(b[345:500]); prefix != "" {
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
		Linkname: cString(b[157:257]),
		Uname:    cString(b[265:297]),
		Gname:    cString(b[297:329]),
		Mode:     numbers[0],
		Uid:      int(numbers[1]),
		Gid:      int(numbers[2]),
		Size:     numbers[3],
		ModTime:  time.Unix(numbers[4], 0),
		Devmajor: numbers[5],
		Devminor: numbers[6],
	}
	return true
}

// validChecksum reports whether b's checksum field holds the sum of its
// bytes (the field itself counted as spaces), as unsigned or signed bytes.
func validChecksum(b []byte) bool {
	want, ok := parseOctal(b[148:156])
	if !ok {
		return false
	}
	// Sum eight bytes at a time, in four 16-bit lanes that cannot
	// overflow over one block, and count the bytes a signed sum would
	// take 256 less for; then count the checksum field as spaces.
	const lowBytes, highBits = 0x00ff00ff00ff00ff, 0x8080808080808080
	var lanes uint64
	var high int
	for i := 0; i < BlockSize; i += 8 {
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

// parseOctal parses an octal tar field padded with spaces or NULs on
// either side, which archive/tar reads as 0 when empty. It reports false
// for anything else, which archive/tar either rejects or reads otherwise
// (base-256 numbers, digits cut short by a NUL).
func parseOctal(field []byte) (int64, bool) {
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

// cString returns a NUL-terminated tar string field.
func cString(field []byte) string {
	if i := bytes.IndexByte(field, 0); i >= 0 {
		field = field[:i]
	}
	return string(field)
}
