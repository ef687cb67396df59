package flate

import "math/bits"

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
func (t *table) lookup(z *Reader) tableEntry {
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
