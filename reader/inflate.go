package reader

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// errInflate reports a gzip member that inflater does not decode. The
// caller then decodes the member with klauspost/compress, which says
// what is wrong with it, if anything: inflater is only a faster path.
var errInflate = errors.New("inflate: cannot decode member")

// An inflater decodes one gzip member (RFC 1952, RFC 1951) held in memory
// into a buffer in memory. Knowing both ends whole, it reads the input
// 64 bits at a time and resolves back-references within the output
// itself, where a streaming decompressor must feed its input byte by byte
// and copy its output out of a sliding window: it inflates a Go binary
// about 1.6 times as fast (BenchmarkInflate). It neither checks the member's CRC-32 nor reads its
// trailer; the reader verifies every chunk against its digest instead.
//
// decode can stop at any output length and resume, so that a chunk can be
// hashed while the rest of it decodes. The zero value is ready for reset.
type inflater struct {
	in   []byte
	pos  int    // next byte of in to load into the bit buffer
	bits uint64 // bit buffer, least significant bit first
	nb   uint   // valid bits in bits; bits above them are 0 or the next input bits

	out []byte // the decoded bytes; decode fills it from len(out) up to its capacity

	final   bool // the current block is the member's last
	state   int  // where decode resumes: inflate* below
	stored  int  // bytes left in the current stored block
	copyLen int  // bytes left of a back-reference cut short by a decode limit
	copyAt  int  // and the offset it copies from

	lit, dist table // the current block's codes
	dynLit    table // code tables of dynamic blocks, reused between blocks
	dynDist   table
	pre       table
	lengths   [maxLitCodes + maxDistCodes]uint8
}

const (
	inflateHeader  = iota // at a block header
	inflateStored         // in a stored block
	inflateHuffman        // in a Huffman-coded block
	inflateDone           // past the final block
)

const (
	maxLitCodes  = 288 // literal/length alphabet of the fixed code
	maxDistCodes = 32  // distance alphabet of the fixed code
	maxCodeBits  = 15
	litTableBits = 10
	// distTableBits and litTableBits trade the time to fill a table,
	// once per block, against how often decoding needs a second lookup.
	distTableBits = 8
	preTableBits  = 7 // code length codes are at most 7 bits: no subtables
)

// reset prepares z to decode member into out[:cap(out)], reading its
// gzip header.
func (z *inflater) reset(member, out []byte) error {
	z.in, z.pos, z.bits, z.nb = member, 0, 0, 0
	z.out = out[:0]
	z.final, z.state, z.stored, z.copyLen = false, inflateHeader, 0, 0
	return z.header()
}

// header skips the gzip member header.
func (z *inflater) header() error {
	const (
		flagHeaderCRC = 1 << 1
		flagExtra     = 1 << 2
		flagName      = 1 << 3
		flagComment   = 1 << 4
	)
	in := z.in
	if len(in) < 10 || in[0] != 0x1f || in[1] != 0x8b || in[2] != 8 || in[3]>>5 != 0 {
		return errInflate
	}
	flags, p := in[3], 10
	if flags&flagExtra != 0 {
		if p+2 > len(in) {
			return errInflate
		}
		p += 2 + int(binary.LittleEndian.Uint16(in[p:]))
	}
	for _, flag := range []byte{flagName, flagComment} {
		if flags&flag != 0 && p <= len(in) {
			end := p
			for end < len(in) && in[end] != 0 {
				end++
			}
			p = end + 1
		}
	}
	if flags&flagHeaderCRC != 0 {
		p += 2
	}
	if p > len(in) {
		return errInflate
	}
	z.pos = p
	return nil
}

// decode decodes until the output holds n bytes (at most its capacity),
// or the member ends, which is an error if it leaves the output short.
func (z *inflater) decode(n int) error {
	n = min(n, cap(z.out))
	for len(z.out) < n {
		var err error
		switch z.state {
		case inflateHeader:
			err = z.blockHeader()
		case inflateStored:
			err = z.copyStored(n)
		case inflateHuffman:
			err = z.huffman(n)
		default:
			return errInflate // the member ended early
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// refill fills the bit buffer to at least 56 bits. Past the end of the
// input it feeds zero bytes, which overran reports.
func (z *inflater) refill() {
	if z.pos+8 <= len(z.in) {
		z.bits |= binary.LittleEndian.Uint64(z.in[z.pos:]) << z.nb
		z.pos += int(63-z.nb) >> 3
		z.nb |= 56
		return
	}
	for z.nb <= 56 {
		if z.pos < len(z.in) {
			z.bits |= uint64(z.in[z.pos]) << z.nb
		}
		z.pos++
		z.nb += 8
	}
}

// overran reports whether decoding consumed bits beyond the input.
func (z *inflater) overran() bool {
	return z.pos-int(z.nb>>3) > len(z.in)
}

// take consumes and returns n bits; the buffer must hold them.
func (z *inflater) take(n uint) uint32 {
	v := uint32(z.bits & (1<<n - 1))
	z.bits >>= n
	z.nb -= n
	return v
}

// blockHeader reads a block's header, and a dynamic block's code tables.
func (z *inflater) blockHeader() error {
	if z.final {
		z.state = inflateDone
		return nil
	}
	z.refill()
	if z.overran() {
		return errInflate
	}
	z.final = z.take(1) == 1
	switch z.take(2) {
	case 0:
		z.take(z.nb & 7) // to a byte boundary
		length, inverse := z.take(16), z.take(16)
		if length != ^inverse&0xffff {
			return errInflate
		}
		// Hand the bytes still in the bit buffer back to the input.
		z.pos -= int(z.nb >> 3)
		z.bits, z.nb = 0, 0
		z.stored, z.state = int(length), inflateStored
		if z.pos > len(z.in) {
			return errInflate
		}
		return nil
	case 1:
		z.lit, z.dist = fixedLit, fixedDist
	case 2:
		if err := z.dynamicTables(); err != nil {
			return err
		}
		z.lit, z.dist = z.dynLit, z.dynDist
	default:
		return errInflate
	}
	z.state = inflateHuffman
	return nil
}

// copyStored copies the current stored block to the output, up to limit
// bytes of output.
func (z *inflater) copyStored(limit int) error {
	n := min(z.stored, limit-len(z.out))
	if n > len(z.in)-z.pos {
		return errInflate
	}
	z.out = append(z.out, z.in[z.pos:z.pos+n]...)
	z.pos += n
	if z.stored -= n; z.stored == 0 {
		z.state = inflateHeader
	}
	return nil
}

// huffman decodes the current block until it ends or the output holds
// limit bytes. It is refill, table.lookup and take by hand, on local
// copies of the bit buffer: the compiler keeps those in registers.
func (z *inflater) huffman(limit int) error {
	if z.copyLen > 0 {
		z.out = z.backCopy(z.out, limit)
	}
	buf, n := z.out[:limit], len(z.out)
	in, pos, bitBuf, nb := z.in, z.pos, z.bits, z.nb
	// Literal/length tables always have litTableBits, distance tables
	// distTableBits: as arrays, their primary tables need no bounds
	// checks.
	lit, dist := z.lit.entries, z.dist.entries
	litPrimary := (*[1 << litTableBits]tableEntry)(lit)
	distPrimary := (*[1 << distTableBits]tableEntry)(dist)
	const litMask, litBits = 1<<litTableBits - 1, litTableBits
	const distMask, distBits = 1<<distTableBits - 1, distTableBits
	err := errInflate
	for n < len(buf) {
		// 56 bits hold a length with its extra bits (15 + 5) and a
		// distance with its (15 + 13), or two literals.
		if pos+8 <= len(in) {
			bitBuf |= binary.LittleEndian.Uint64(in[pos:]) << nb
			pos += int(63-nb) >> 3
			nb |= 56
		} else {
			for ; nb <= 56; nb += 8 {
				if pos < len(in) {
					bitBuf |= uint64(in[pos]) << nb
				}
				pos++
			}
		}
		e := litPrimary[bitBuf&litMask]
		if e.kind() == kindLiteral {
			bitBuf >>= e.bits()
			nb -= e.bits()
			buf[n] = byte(e.value())
			n++
			if e = litPrimary[bitBuf&litMask]; e.kind() != kindLiteral || n == len(buf) {
				continue
			}
			bitBuf >>= e.bits()
			nb -= e.bits()
			buf[n] = byte(e.value())
			n++
			continue
		}
		if e.kind() == kindSub {
			bitBuf >>= litBits
			nb -= litBits
			e = lit[int(e.value())+int(bitBuf&(1<<e.extra()-1))]
		}
		bitBuf >>= e.bits()
		nb -= e.bits()
		switch e.kind() {
		case kindLiteral:
			buf[n] = byte(e.value())
			n++
			continue
		case kindLength:
		case kindEnd:
			z.state = inflateHeader
			err = nil
			if pos-int(nb>>3) > len(in) {
				err = errInflate
			}
			goto done
		default:
			goto done
		}
		length := int(e.value() + uint32(bitBuf&(1<<e.extra()-1)))
		bitBuf >>= e.extra()
		nb -= e.extra()
		e = distPrimary[bitBuf&distMask]
		if e.kind() == kindSub {
			bitBuf >>= distBits
			nb -= distBits
			e = dist[int(e.value())+int(bitBuf&(1<<e.extra()-1))]
		}
		bitBuf >>= e.bits()
		nb -= e.bits()
		if e.kind() != kindLength {
			goto done
		}
		distance := int(e.value() + uint32(bitBuf&(1<<e.extra()-1)))
		bitBuf >>= e.extra()
		nb -= e.extra()
		if distance > n || pos-int(nb>>3) > len(in) {
			goto done
		}
		if distance >= 8 && n+length+8 <= len(buf) {
			// Most matches are short and far enough back to be copied
			// 8 bytes at a time, each word read before it is
			// overwritten; the last word may spill up to 7 bytes past
			// the match, which decoding overwrites next.
			for k := n; k < n+length; k += 8 {
				binary.LittleEndian.PutUint64(buf[k:], binary.LittleEndian.Uint64(buf[k-distance:]))
			}
			n += length
			continue
		}
		z.copyLen, z.copyAt = length, n-distance
		n = len(z.backCopy(buf[:n], limit))
	}
	err = nil
done:
	z.out, z.pos, z.bits, z.nb = buf[:n], pos, bitBuf, nb
	return err
}

// backCopy appends the pending back-reference to out, up to limit bytes.
func (z *inflater) backCopy(out []byte, limit int) []byte {
	n := min(z.copyLen, limit-len(out))
	start, from := len(out), z.copyAt
	out = out[:start+n]
	// out[from:start] repeats with period start-from, so each copy can
	// take all that the previous ones wrote: the copies double.
	for k := start; k < start+n; {
		k += copy(out[k:start+n], out[from:k])
	}
	z.copyLen -= n
	z.copyAt += n
	return out
}

// dynamicTables reads the code tables of a dynamic block.
func (z *inflater) dynamicTables() error {
	z.refill()
	nlit, ndist, npre := int(z.take(5))+257, int(z.take(5))+1, int(z.take(4))+4
	if nlit > 286 || ndist > 30 {
		return errInflate
	}
	var preLengths [19]uint8
	for i, sym := range precodeOrder[:npre] {
		if i == 8 {
			z.refill() // 14 bits of header and 16 lengths of 3 fit in 56
		}
		preLengths[sym] = uint8(z.take(3))
	}
	pre := &z.pre
	if !pre.build(preLengths[:], precodeValues, preTableBits, false) {
		return errInflate
	}
	lengths := z.lengths[:nlit+ndist]
	for i := 0; i < len(lengths); {
		z.refill()
		e := pre.lookup(z)
		if e.kind() != kindLiteral {
			return errInflate
		}
		sym := e.value()
		if sym < 16 {
			lengths[i] = uint8(sym)
			i++
			continue
		}
		var repeat int
		var value uint8
		switch sym {
		case 16:
			if i == 0 {
				return errInflate
			}
			value, repeat = lengths[i-1], 3+int(z.take(2))
		case 17:
			repeat = 3 + int(z.take(3))
		default:
			repeat = 11 + int(z.take(7))
		}
		if i+repeat > len(lengths) {
			return errInflate
		}
		for range repeat {
			lengths[i] = value
			i++
		}
	}
	if z.overran() || lengths[256] == 0 {
		return errInflate
	}
	if !z.dynLit.build(lengths[:nlit], litValues, litTableBits, true) ||
		!z.dynDist.build(lengths[nlit:], distValues, distTableBits, true) {
		return errInflate
	}
	return nil
}

// A tableEntry decodes one code: how many bits it takes, what kind of
// symbol it is, its value (a literal, a length or distance base, or where
// its subtable starts) and how many extra bits follow it.
type tableEntry uint32

const (
	kindLiteral = iota // also the code length alphabet's symbols
	kindLength         // a length or distance base, with extra bits
	kindEnd
	kindSub
	kindInvalid
)

func newEntry(bits, kind, extra, value uint32) tableEntry {
	return tableEntry(bits | kind<<4 | extra<<8 | value<<16)
}

func (e tableEntry) bits() uint    { return uint(e & 15) }
func (e tableEntry) kind() uint32  { return uint32(e>>4) & 15 }
func (e tableEntry) extra() uint   { return uint(e>>8) & 15 }
func (e tableEntry) value() uint32 { return uint32(e >> 16) }

// A table decodes a canonical Huffman code in one lookup of its first
// tableBits bits, and a second lookup for longer codes.
type table struct {
	entries   []tableEntry // primary table, then the subtables
	tableBits uint
}

// lookup decodes the next symbol, consuming its code but not its extra
// bits. The bit buffer must hold at least maxCodeBits bits.
func (t *table) lookup(z *inflater) tableEntry {
	e := t.entries[z.bits&(1<<t.tableBits-1)]
	if e.kind() == kindSub {
		z.take(t.tableBits)
		e = t.entries[int(e.value())+int(z.bits&(1<<e.extra()-1))]
	}
	z.take(e.bits())
	return e
}

// build fills t for the code with the given code lengths, whose symbols
// decode as values[symbol] (entries with bits 0). It reports false for
// an over-subscribed code, and for an incomplete one unless incomplete
// is set and the code has a single symbol of one bit, or none, as
// deflate allows for distances; unassigned codes decode as kindInvalid.
func (t *table) build(lengths []uint8, values []tableEntry, tableBits uint, incomplete bool) bool {
	var count [maxCodeBits + 1]int
	for _, n := range lengths {
		count[n]++
	}
	count[0] = 0
	left, longest := 1, 0
	for n := 1; n <= maxCodeBits; n++ {
		left = left<<1 - count[n]
		if left < 0 {
			return false
		}
		if count[n] > 0 {
			longest = n
		}
	}
	if left > 0 && !(incomplete && longest <= 1) {
		return false
	}
	var next [maxCodeBits + 2]uint32 // first code of each length
	for n := 1; n <= maxCodeBits; n++ {
		next[n+1] = (next[n] + uint32(count[n])) << 1
	}

	t.tableBits = tableBits
	size := 1 << tableBits
	t.entries = t.entries[:0]
	t.entries = append(t.entries, make([]tableEntry, size)...)
	invalid := newEntry(0, kindInvalid, 0, 0)
	if left > 0 {
		// Only an incomplete code leaves entries unassigned.
		for i := range t.entries {
			t.entries[i] = invalid
		}
	}
	if longest > int(tableBits) {
		// Codes longer than tableBits continue in a subtable of their
		// primary entry, wide enough for the longest code.
		subBits := uint(longest) - tableBits
		codes := next
		for _, n := range lengths {
			if uint(n) <= tableBits {
				continue
			}
			prefix := reverse(codes[n], uint(n)) & (1<<tableBits - 1)
			codes[n]++
			if t.entries[prefix].kind() != kindSub {
				t.entries[prefix] = newEntry(0, kindSub, uint32(subBits), uint32(len(t.entries)))
				for range 1 << subBits {
					t.entries = append(t.entries, invalid)
				}
			}
		}
	}
	for sym, n := range lengths {
		if n == 0 {
			continue
		}
		code := reverse(next[n], uint(n))
		next[n]++
		v := values[sym] | tableEntry(n)
		if uint(n) <= tableBits {
			for k := code; k < uint32(size); k += 1 << n {
				t.entries[k] = v
			}
			continue
		}
		sub := t.entries[code&(1<<tableBits-1)]
		subBits := sub.extra()
		v = values[sym] | tableEntry(uint(n)-tableBits)
		for k := code >> tableBits; k < 1<<subBits; k += 1 << (uint(n) - tableBits) {
			t.entries[int(sub.value())+int(k)] = v
		}
	}
	return true
}

func reverse(code uint32, n uint) uint32 {
	return bits.Reverse32(code) >> (32 - n)
}

// precodeOrder is the order in which a dynamic block lists the code
// lengths of the code length alphabet.
var precodeOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// fixedLit and fixedDist decode the fixed code of RFC 1951 section 3.2.6.
var fixedLit, fixedDist = fixedTables()

func fixedTables() (lit, dist table) {
	var lengths [maxLitCodes]uint8
	for sym := range lengths {
		switch {
		case sym < 144:
			lengths[sym] = 8
		case sym < 256:
			lengths[sym] = 9
		case sym < 280:
			lengths[sym] = 7
		default:
			lengths[sym] = 8
		}
	}
	lit.build(lengths[:], litValues, litTableBits, false)
	var distLengths [maxDistCodes]uint8
	for sym := range distLengths {
		distLengths[sym] = 5
	}
	dist.build(distLengths[:], distValues, distTableBits, false)
	return lit, dist
}

// The values of each alphabet's symbols, without their code lengths.
var (
	litValues     = alphabet(maxLitCodes, litValue)
	distValues    = alphabet(maxDistCodes, distValue)
	precodeValues = alphabet(19, func(sym int) tableEntry { return newEntry(0, kindLiteral, 0, uint32(sym)) })
)

func alphabet(n int, value func(int) tableEntry) []tableEntry {
	values := make([]tableEntry, n)
	for sym := range values {
		values[sym] = value(sym)
	}
	return values
}

func litValue(sym int) tableEntry {
	switch {
	case sym < 256:
		return newEntry(0, kindLiteral, 0, uint32(sym))
	case sym == 256:
		return newEntry(0, kindEnd, 0, 0)
	case sym < 265:
		return newEntry(0, kindLength, 0, uint32(sym-254))
	case sym < 285:
		extra := (sym - 261) / 4
		base := ((4 + (sym-265)%4) << extra) + 3
		return newEntry(0, kindLength, uint32(extra), uint32(base))
	case sym == 285:
		return newEntry(0, kindLength, 0, 258)
	default:
		return newEntry(0, kindInvalid, 0, 0)
	}
}

func distValue(sym int) tableEntry {
	switch {
	case sym < 4:
		return newEntry(0, kindLength, 0, uint32(sym+1))
	case sym < 30:
		extra := sym/2 - 1
		base := ((2 + sym%2) << extra) + 1
		return newEntry(0, kindLength, uint32(extra), uint32(base))
	default:
		return newEntry(0, kindInvalid, 0, 0)
	}
}
