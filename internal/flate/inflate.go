// Package flate decodes gzip streams (RFC 1952, RFC 1951) in one pass and
// reports every point where decoding can resume: the bit position between
// two deflate blocks and the 32 KiB window of output before it. It is the
// inflater of lazylayer's span indexes (zTOCs), which need what zlib's
// inflate(Z_BLOCK) tells soci-snapshotter, at the speed of a plain gunzip.
package flate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// ErrCorrupt reports input that is not a valid gzip stream.
var ErrCorrupt = errors.New("flate: corrupt gzip stream")

// WindowSize is the size of the window a Boundary carries: deflate's
// largest back-reference distance.
const WindowSize = 32 << 10

const (
	inBufSize  = 256 << 10 // input read at a time
	outBufSize = 1 << 20   // output decoded at most at a time, after the window
	// minStep is the least a Read decodes ahead: a caller that wants
	// a few bytes of a frame does not pay for a megabyte.
	minStep = 32 << 10
	// headerSlack is the input a block header may need: a dynamic
	// block's code lengths take at most 14+19*3+316*14 bits.
	headerSlack = 1024
)

// A Boundary is a point in the stream where decoding can resume with no
// more state than it holds: after a gzip member's header, or between two
// blocks of a member.
type Boundary struct {
	// In is how many bytes of the stream decoding has taken, the last
	// one perhaps in part; Bits is how many high bits of byte In-1 it has
	// not (0-7). The bit position is 8*In - Bits.
	In   int64
	Bits uint8
	// Out is how many bytes the stream has decoded to.
	Out int64
	// Window is the WindowSize bytes of output before Out, zero-padded
	// at the front when Out is smaller. It is valid during the call only.
	Window []byte
	// Partial is byte In-1 when Bits is not 0: OnInput has not had it
	// yet.
	Partial byte
}

// A Reader decodes a gzip stream of one or more members. Its output
// (Read) is that of compress/gzip; OnBoundary and OnInput tell where
// decoding could resume and which compressed bytes it took.
type Reader struct {
	// OnBoundary, if set, is called at every boundary where a
	// checkpoint can go: after each member's header and after each block
	// but a member's last, as zlib's inflate(Z_BLOCK) stops. An error it
	// returns stops decoding and Read returns it.
	OnBoundary func(*Boundary) error
	// OnInput, if set, receives every byte of the stream once, in
	// order. Before a boundary, it has received every byte before
	// Boundary.In, except byte In-1 when Bits is not 0; that byte comes
	// next.
	OnInput func([]byte)

	src    io.Reader
	srcErr error // from src, once it has returned one

	in     []byte // buffered input; in[pos:] is not yet in the bit buffer
	inBase int64  // stream offset of in[0]
	sent   int    // in[:sent] went to OnInput
	pos    int
	bits   uint64 // bit buffer, least significant bit first
	nb     uint   // valid bits in bits

	out      []byte // WindowSize bytes of history, then new output
	limit    int    // how far into out the current step may decode
	outBase  int64  // stream offset of out[0], less WindowSize at first
	readPos  int    // out[readPos:] is not yet returned by Read
	crcPos   int    // out[crcPos:] is not yet in crc
	crc      uint32
	memberAt int64 // output offset where the current member started

	final   bool
	resumed bool // inside the member Resume started in, whose CRC is unknown
	state   int
	stored  int
	copyLen int
	copyAt  int
	err     error

	lit, dist table
	dynLit    table
	dynDist   table
	pre       table
	lengths   [maxLitCodes + maxDistCodes]uint8
	boundary  Boundary
}

const (
	stateMember  = iota // before a gzip member's header
	stateHeader         // at a block header
	stateStored         // in a stored block
	stateHuffman        // in a Huffman-coded block
	stateTrailer        // after a member's last block
	stateEOF
)

// NewReader returns a Reader of the gzip stream r.
func NewReader(r io.Reader) *Reader {
	z := &Reader{in: make([]byte, 0, inBufSize), out: make([]byte, WindowSize, WindowSize+outBufSize)}
	z.Reset(r)
	return z
}

// Reset makes z a Reader of the gzip stream r, as NewReader does, but
// keeping its buffers and code tables, and OnBoundary and OnInput: a
// reader of many small streams then allocates nothing per stream.
func (z *Reader) Reset(r io.Reader) {
	*z = Reader{
		OnBoundary: z.OnBoundary,
		OnInput:    z.OnInput,
		src:        r,
		in:         z.in[:0],
		out:        z.out[:WindowSize],
		outBase:    -WindowSize,
		readPos:    WindowSize,
		crcPos:     WindowSize,
		dynLit:     z.dynLit,
		dynDist:    z.dynDist,
		pre:        z.pre,
	}
	clear(z.out) // the window before a stream's start is zeros
}

// Resume makes z a Reader of a gzip stream from a Boundary on, keeping
// its buffers and callbacks as Reset does. r starts at the byte that holds
// the boundary's first bit: byte In-1 of the stream when bits (the
// Boundary's Bits) is not 0, else byte In. window is the output before the
// boundary, its last WindowSize bytes used (zeros before a shorter one).
// Decoding goes on to the end of the stream, across members; the CRC-32
// and length of the member it resumes in are not checked, as its start is
// not decoded. A nil window says the boundary is a member's start, after
// its header: then nothing before it may be referred to, and the member
// is checked. The offsets of Boundary and InputOffset count from the
// start of r and of the output after the boundary.
func (z *Reader) Resume(r io.Reader, bits uint8, window []byte) {
	z.Reset(r)
	z.state = stateHeader
	if window != nil {
		window = window[max(0, len(window)-WindowSize):]
		copy(z.out[WindowSize-len(window):], window)
		z.memberAt = -WindowSize // back-references may reach the whole window
		z.resumed = true
	}
	if bits&7 == 0 {
		return
	}
	if !z.need(1) {
		z.err = z.readErr("a block header")
		return
	}
	z.bits, z.nb, z.pos = uint64(z.in[0]>>(8-bits&7)), uint(bits&7), 1
}

// InputOffset returns how many bytes of the stream the Reader has taken,
// whole or in part.
func (z *Reader) InputOffset() int64 {
	return z.inBase + int64(z.pos) - int64(z.nb>>3)
}

// Read reads decoded bytes. At the end of the stream it returns io.EOF;
// for a corrupt stream, an error wrapping ErrCorrupt.
func (z *Reader) Read(p []byte) (int, error) {
	for z.readPos == len(z.out) {
		if z.err != nil {
			return 0, z.err
		}
		z.err = z.step(len(p))
	}
	n := copy(p, z.out[z.readPos:])
	z.readPos += n
	return n, nil
}

// WriteTo writes the decoded stream to w, without Read's copy.
func (z *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if z.readPos < len(z.out) {
			n, err := w.Write(z.out[z.readPos:])
			z.readPos += n
			total += int64(n)
			if err != nil {
				return total, err
			}
			continue
		}
		if z.err != nil {
			if z.err == io.EOF {
				return total, nil
			}
			return total, z.err
		}
		z.err = z.step(outBufSize)
	}
}

// step decodes until there is new output (want bytes at most, or
// minStep), an error or the end.
func (z *Reader) step(want int) error {
	if len(z.out) == cap(z.out) {
		z.slide()
	}
	z.limit = min(cap(z.out), len(z.out)+max(want, minStep))
	switch z.state {
	case stateMember:
		return z.member()
	case stateHeader:
		if !z.need(headerSlack) && z.pos == len(z.in) && z.nb == 0 {
			return z.corrupt("stream ends inside a member")
		}
		return z.blockHeader()
	case stateStored:
		return z.copyStored()
	case stateHuffman:
		return z.huffman()
	case stateTrailer:
		return z.trailer()
	default:
		return io.EOF
	}
}

// slide drops output all returned, keeping WindowSize bytes of history.
func (z *Reader) slide() {
	z.crc = crc32.Update(z.crc, crc32.IEEETable, z.out[z.crcPos:])
	keep := len(z.out) - WindowSize
	copy(z.out, z.out[keep:])
	z.out = z.out[:WindowSize]
	z.outBase += int64(keep)
	z.readPos -= keep
	z.crcPos = WindowSize
	z.copyAt -= keep // a pending back-reference copies from the history kept
}

// need makes at least n bytes of input available past pos, if the stream
// has them; it reports whether it does.
func (z *Reader) need(n int) bool {
	for len(z.in)-z.pos < n {
		if z.srcErr != nil {
			return false
		}
		// Drop the bytes decoding is done with, whole; keep the one the
		// bit position is in.
		done := z.pos - int((z.nb+7)>>3)
		z.send(done)
		copy(z.in, z.in[done:])
		z.in = z.in[:len(z.in)-done]
		z.inBase += int64(done)
		z.pos -= done
		z.sent -= done
		m, err := io.ReadAtLeast(z.src, z.in[len(z.in):cap(z.in)], 1)
		z.in = z.in[:len(z.in)+m]
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			z.srcErr = err
		}
	}
	return true
}

// send gives in[sent:upTo] to OnInput.
func (z *Reader) send(upTo int) {
	if upTo > z.sent {
		if z.OnInput != nil {
			z.OnInput(z.in[z.sent:upTo])
		}
		z.sent = upTo
	}
}

// readErr returns the error of a stream that ended early.
func (z *Reader) readErr(where string) error {
	if z.srcErr != nil && z.srcErr != io.EOF {
		return z.srcErr
	}
	return z.corrupt("stream ends inside " + where)
}

func (z *Reader) corrupt(msg string) error {
	return fmt.Errorf("%w: %s, near compressed offset %d", ErrCorrupt, msg, z.InputOffset())
}

// byte returns the next whole byte of input; the bit buffer must be
// empty.
func (z *Reader) byte(where string) (byte, error) {
	if !z.need(1) {
		return 0, z.readErr(where)
	}
	z.pos++
	return z.in[z.pos-1], nil
}

// member reads a gzip member header, or finds the end of the stream.
func (z *Reader) member() error {
	const (
		flagHeaderCRC = 1 << 1
		flagExtra     = 1 << 2
		flagName      = 1 << 3
		flagComment   = 1 << 4
	)
	if !z.need(1) {
		if z.inBase+int64(z.pos) == 0 {
			return z.readErr("the first gzip header")
		}
		if z.srcErr != io.EOF {
			return z.srcErr
		}
		z.send(len(z.in))
		z.state = stateEOF
		return io.EOF
	}
	// The header's CRC-16, if it has one, covers all of it.
	hcrc := uint32(0)
	next := func() (byte, error) {
		b, err := z.byte("a gzip header")
		hcrc = crc32.Update(hcrc, crc32.IEEETable, []byte{b})
		return b, err
	}
	var h [10]byte
	for i := range h {
		b, err := next()
		if err != nil {
			return err
		}
		h[i] = b
	}
	if h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 || h[3]>>5 != 0 {
		return z.corrupt("not a gzip member header")
	}
	flags := h[3]
	if flags&flagExtra != 0 {
		lo, err := next()
		if err != nil {
			return err
		}
		hi, err := next()
		if err != nil {
			return err
		}
		for range int(lo) | int(hi)<<8 {
			if _, err := next(); err != nil {
				return err
			}
		}
	}
	for _, flag := range []byte{flagName, flagComment} {
		if flags&flag == 0 {
			continue
		}
		for {
			b, err := next()
			if err != nil {
				return err
			}
			if b == 0 {
				break
			}
		}
	}
	if flags&flagHeaderCRC != 0 {
		want := uint16(hcrc)
		lo, err := z.byte("a gzip header")
		if err != nil {
			return err
		}
		hi, err := z.byte("a gzip header")
		if err != nil {
			return err
		}
		if uint16(lo)|uint16(hi)<<8 != want {
			return z.corrupt("gzip header fails its CRC-16 check")
		}
	}
	z.memberAt = z.outBase + int64(len(z.out))
	z.crc, z.crcPos = 0, len(z.out)
	z.final, z.state = false, stateHeader
	return z.atBoundary()
}

// atBoundary reports the boundary at the current bit position.
func (z *Reader) atBoundary() error {
	if z.OnBoundary == nil {
		return nil
	}
	bitPos := (z.inBase+int64(z.pos))*8 - int64(z.nb)
	in := (bitPos + 7) >> 3
	z.send(int(bitPos>>3 - z.inBase))
	n := len(z.out)
	z.boundary = Boundary{In: in, Bits: uint8(in*8 - bitPos), Out: z.outBase + int64(n), Window: z.out[n-WindowSize : n : n]}
	if z.boundary.Bits != 0 {
		z.boundary.Partial = z.in[in-1-z.inBase]
	}
	return z.OnBoundary(&z.boundary)
}

// blockEnd follows the end of a block.
func (z *Reader) blockEnd() error {
	if z.final {
		z.state = stateTrailer
		return nil
	}
	z.state = stateHeader
	return z.atBoundary()
}

// trailer checks a member's CRC-32 and length.
func (z *Reader) trailer() error {
	z.take(z.nb & 7) // to a byte boundary
	// Hand the whole bytes still in the bit buffer back to the input.
	z.pos -= int(z.nb >> 3)
	z.bits, z.nb = 0, 0
	var t [8]byte
	for i := range t {
		b, err := z.byte("a gzip trailer")
		if err != nil {
			return err
		}
		t[i] = b
	}
	z.crc = crc32.Update(z.crc, crc32.IEEETable, z.out[z.crcPos:])
	z.crcPos = len(z.out)
	size := uint32(z.outBase + int64(len(z.out)) - z.memberAt)
	if z.resumed {
		z.resumed = false
	} else if binary.LittleEndian.Uint32(t[:]) != z.crc || binary.LittleEndian.Uint32(t[4:]) != size {
		return z.corrupt("gzip member fails its CRC-32 or length check")
	}
	z.state = stateMember
	return nil
}

// refill fills the bit buffer to at least 56 bits. Past the end of the
// input it feeds zero bytes, which overran reports.
func (z *Reader) refill() {
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
func (z *Reader) overran() bool {
	return z.pos-int(z.nb>>3) > len(z.in)
}

// take consumes and returns n bits; the buffer must hold them.
func (z *Reader) take(n uint) uint32 {
	v := uint32(z.bits & (1<<n - 1))
	z.bits >>= n
	z.nb -= n
	return v
}

// blockHeader reads a block's header, and a dynamic block's code tables.
// The input holds headerSlack bytes past pos, or the rest of the stream.
func (z *Reader) blockHeader() error {
	z.refill()
	if z.overran() {
		return z.readErr("a block header")
	}
	z.final = z.take(1) == 1
	switch z.take(2) {
	case 0:
		z.take(z.nb & 7) // to a byte boundary
		length, inverse := z.take(16), z.take(16)
		if length != ^inverse&0xffff {
			return z.corrupt("stored block length fails its check")
		}
		// Hand the bytes still in the bit buffer back to the input.
		z.pos -= int(z.nb >> 3)
		z.bits, z.nb = 0, 0
		if z.pos > len(z.in) {
			return z.readErr("a block header")
		}
		z.stored, z.state = int(length), stateStored
		if length == 0 {
			return z.blockEnd()
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
		return z.corrupt("invalid block type")
	}
	z.state = stateHuffman
	return nil
}

// copyStored copies the current stored block to the output, as far as
// the input and the output buffer allow.
func (z *Reader) copyStored() error {
	if !z.need(1) {
		return z.readErr("a stored block")
	}
	n := min(z.stored, len(z.in)-z.pos, z.limit-len(z.out))
	z.out = append(z.out, z.in[z.pos:z.pos+n]...)
	z.pos += n
	if z.stored -= n; z.stored == 0 {
		return z.blockEnd()
	}
	return nil
}

// huffman decodes the current block until it ends, the output buffer is
// full or the input runs short. It is refill, table.lookup and take by
// hand, on local copies of the bit buffer: the compiler keeps those in
// registers.
func (z *Reader) huffman() error {
	if z.copyLen > 0 {
		z.out = z.out[:len(z.backCopy(z.out[:len(z.out):z.limit]))]
		return nil
	}
	// Decode only while 8 bytes of input are buffered, enough for any
	// symbol, unless the stream has no more.
	z.need(8)
	buf, n := z.out[:z.limit:z.limit], len(z.out)
	in, pos, bitBuf, nb := z.in, z.pos, z.bits, z.nb
	atEOF := z.srcErr != nil
	// history is how far back the current member's output reaches.
	history := int(min(int64(n), z.outBase+int64(n)-z.memberAt))
	lowest := n - history // the first byte a back-reference may copy
	lit, dist := z.lit.entries, z.dist.entries
	litPrimary := (*[1 << litTableBits]tableEntry)(lit)
	distPrimary := (*[1 << distTableBits]tableEntry)(dist)
	const litMask, litBits = 1<<litTableBits - 1, litTableBits
	const distMask, distBits = 1<<distTableBits - 1, distTableBits
	var err error
	for n < len(buf) {
		// 56 bits hold a length with its extra bits (15 + 5) and a
		// distance with its (15 + 13), or two literals.
		if pos+8 <= len(in) {
			bitBuf |= binary.LittleEndian.Uint64(in[pos:]) << nb
			pos += int(63-nb) >> 3
			nb |= 56
		} else if !atEOF {
			break // the caller buffers more input
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
			z.out, z.pos, z.bits, z.nb = z.out[:n], pos, bitBuf, nb
			if z.overran() {
				return z.readErr("a block")
			}
			return z.blockEnd()
		default:
			err = z.corrupt("invalid literal/length code")
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
			err = z.corrupt("invalid distance code")
			goto done
		}
		distance := int(e.value() + uint32(bitBuf&(1<<e.extra()-1)))
		bitBuf >>= e.extra()
		nb -= e.extra()
		if distance > n-lowest {
			err = z.corrupt("back-reference before the start of the member")
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
		n = len(z.backCopy(buf[:n]))
	}
done:
	z.out, z.pos, z.bits, z.nb = z.out[:n], pos, bitBuf, nb
	if err == nil && z.overran() {
		err = z.readErr("a block")
	}
	return err
}

// backCopy appends the pending back-reference to out, as far as the
// output buffer allows.
func (z *Reader) backCopy(out []byte) []byte {
	n := min(z.copyLen, cap(out)-len(out))
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
func (z *Reader) dynamicTables() error {
	z.refill()
	nlit, ndist, npre := int(z.take(5))+257, int(z.take(5))+1, int(z.take(4))+4
	if nlit > 286 || ndist > 30 {
		return z.corrupt("too many codes in a dynamic block")
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
		return z.corrupt("invalid code length code")
	}
	lengths := z.lengths[:nlit+ndist]
	for i := 0; i < len(lengths); {
		z.refill()
		e := pre.lookup(z)
		if e.kind() != kindLiteral {
			return z.corrupt("invalid code length code")
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
				return z.corrupt("repeat of no code length")
			}
			value, repeat = lengths[i-1], 3+int(z.take(2))
		case 17:
			repeat = 3 + int(z.take(3))
		default:
			repeat = 11 + int(z.take(7))
		}
		if i+repeat > len(lengths) {
			return z.corrupt("code lengths overflow")
		}
		for range repeat {
			lengths[i] = value
			i++
		}
	}
	if z.overran() {
		return z.readErr("a block header")
	}
	if lengths[256] == 0 {
		return z.corrupt("dynamic block without an end code")
	}
	if !z.dynLit.build(lengths[:nlit], litValues, litTableBits, true) ||
		!z.dynDist.build(lengths[nlit:], distValues, distTableBits, true) {
		return z.corrupt("invalid Huffman code")
	}
	return nil
}
