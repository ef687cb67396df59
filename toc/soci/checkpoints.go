package soci

import (
	"encoding/binary"
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"
)

// WindowSize is the size of a checkpoint's window: deflate's 32 KiB.
const WindowSize = 32 << 10

const (
	blobHeaderSize = 4 + 8                  // int32 count, int64 span size
	packedSize     = 8 + 8 + 1 + WindowSize // int64 in, int64 out, uint8 bits, window
	// legacyFirstIn is where the first version of the blob, which omits
	// checkpoint 0, assumes it: after a 10-byte gzip header.
	legacyFirstIn = 10
)

// Checkpoints is the checkpoint blob of a gzip layer's zTOC: where each
// span starts, with the inflate state needed to decode from there.
type Checkpoints struct {
	SpanSize int64
	// Points[i] is where span i starts. Points[0] is at the end of the
	// first gzip member's header.
	Points []Checkpoint
	// Legacy says the blob omits Points[0], as soci's first blob
	// version did (it assumes a 10-byte gzip header).
	Legacy bool
}

// A Checkpoint is a point between two deflate blocks.
type Checkpoint struct {
	// In is the offset in the layer blob of the first byte the block
	// after the checkpoint does not share with the block before; Bits is
	// how many of the high bits of byte In-1 belong to the block after
	// (0 to 7).
	In   int64
	Bits uint8
	// Out is the checkpoint's offset in the uncompressed stream.
	Out int64
	// Window is the WindowSize bytes of output before Out, zero-padded at
	// the front when Out is smaller. Decoded windows alias the blob.
	Window []byte
}

// CompressedStart returns where the compressed bytes of the span that
// starts at p start: with byte In-1 when it holds some of its bits.
func (p Checkpoint) CompressedStart() int64 {
	if p.Bits != 0 {
		return p.In - 1
	}
	return p.In
}

// DecodeCheckpoints decodes and validates an untrusted checkpoint blob of
// either version: checkpoints whose offsets do not increase, a bit count
// over 7 or a size that matches neither version give errors wrapping
// ErrInvalid; counts over the limits ErrTooLarge, checked before
// allocation.
func DecodeCheckpoints(blob []byte, opts ...Option) (*Checkpoints, error) {
	return decodeCheckpoints(blob, newConfig(opts))
}

func decodeCheckpoints(blob []byte, c config) (*Checkpoints, error) {
	if len(blob) < blobHeaderSize {
		return nil, fmt.Errorf("%w: checkpoint blob of %d bytes is shorter than its header", ErrInvalid, len(blob))
	}
	n := int64(int32(binary.LittleEndian.Uint32(blob)))
	cp := &Checkpoints{SpanSize: int64(binary.LittleEndian.Uint64(blob[4:]))}
	if n < 1 {
		return nil, fmt.Errorf("%w: checkpoint blob declares %d checkpoints", ErrInvalid, n)
	}
	if n > int64(c.maxSpans) {
		return nil, fmt.Errorf("%w: %d checkpoints exceed the limit of %d", ErrTooLarge, n, c.maxSpans)
	}
	if cp.SpanSize <= 0 || cp.SpanSize > c.maxLayerSize {
		return nil, fmt.Errorf("%w: checkpoint blob has span size %d", ErrInvalid, cp.SpanSize)
	}
	packed := n
	switch int64(len(blob)) {
	case blobHeaderSize + n*packedSize:
	case blobHeaderSize + (n-1)*packedSize:
		cp.Legacy, packed = true, n-1
	default:
		return nil, fmt.Errorf("%w: checkpoint blob of %d bytes holds neither %d nor %d checkpoints", ErrInvalid, len(blob), n, n-1)
	}
	cp.Points = make([]Checkpoint, 0, n)
	if cp.Legacy {
		cp.Points = append(cp.Points, Checkpoint{In: legacyFirstIn, Window: make([]byte, WindowSize)})
	}
	for p := blob[blobHeaderSize:]; packed > 0; packed, p = packed-1, p[packedSize:] {
		pt := Checkpoint{
			In:     int64(binary.LittleEndian.Uint64(p)),
			Out:    int64(binary.LittleEndian.Uint64(p[8:])),
			Bits:   p[16],
			Window: p[17:packedSize:packedSize],
		}
		i := len(cp.Points)
		if pt.Bits > 7 {
			return nil, fmt.Errorf("%w: checkpoint %d has %d bits", ErrInvalid, i, pt.Bits)
		}
		if pt.In < 0 || pt.In > c.maxLayerSize || pt.Out < 0 || pt.Out > c.maxLayerSize {
			return nil, fmt.Errorf("%w: checkpoint %d at offsets %d, %d is outside the layer size limit of %d", ErrInvalid, i, pt.In, pt.Out, c.maxLayerSize)
		}
		if i == 0 && (pt.Out != 0 || pt.CompressedStart() < 0) {
			return nil, fmt.Errorf("%w: checkpoint 0 is at offsets %d, %d, not at the start of the output", ErrInvalid, pt.In, pt.Out)
		}
		if i > 0 {
			if prev := cp.Points[i-1]; pt.In <= prev.In || pt.Out <= prev.Out {
				return nil, fmt.Errorf("%w: checkpoint %d at offsets %d, %d does not follow checkpoint %d at %d, %d",
					ErrInvalid, i, pt.In, pt.Out, i-1, prev.In, prev.Out)
			}
		}
		cp.Points = append(cp.Points, pt)
	}
	return cp, nil
}

// Encode returns the checkpoint blob, in the version Legacy selects.
func (cp *Checkpoints) Encode() []byte {
	points := cp.Points
	if cp.Legacy && len(points) > 0 {
		points = points[1:]
	}
	blob := make([]byte, blobHeaderSize, blobHeaderSize+len(points)*packedSize)
	binary.LittleEndian.PutUint32(blob, uint32(len(cp.Points)))
	binary.LittleEndian.PutUint64(blob[4:], uint64(cp.SpanSize))
	for _, p := range points {
		blob = binary.LittleEndian.AppendUint64(blob, uint64(p.In))
		blob = binary.LittleEndian.AppendUint64(blob, uint64(p.Out))
		blob = append(blob, p.Bits)
		n := len(blob)
		blob = append(blob, make([]byte, WindowSize)...)
		// A shorter window is the end of the output: pad it at the front.
		copy(blob[n+WindowSize-min(len(p.Window), WindowSize):], p.Window[max(0, len(p.Window)-WindowSize):])
	}
	return blob
}

// TarZinfo is the checkpoint blob of an uncompressed layer's zTOC: spans
// of SpanSize bytes, the last one shorter, over Size bytes.
type TarZinfo struct {
	Version  int32
	SpanSize int64
	Size     int64
}

// Spans returns the number of spans z divides its layer into.
func (z TarZinfo) Spans() int64 {
	return (z.Size + z.SpanSize - 1) / z.SpanSize
}

// DecodeTarZinfo decodes and validates an untrusted TarZinfo.
func DecodeTarZinfo(blob []byte, opts ...Option) (TarZinfo, error) {
	c := newConfig(opts)
	t, err := rootTable(blob)
	if err != nil {
		return TarZinfo{}, fmt.Errorf("TarZinfo: %w", err)
	}
	var z TarZinfo
	version, err := t.uint32(0)
	if err != nil {
		return TarZinfo{}, err
	}
	z.Version = int32(version)
	if z.SpanSize, err = t.int64(1); err != nil {
		return TarZinfo{}, err
	}
	if z.Size, err = t.int64(2); err != nil {
		return TarZinfo{}, err
	}
	if z.SpanSize <= 0 || z.SpanSize > c.maxLayerSize || z.Size < 0 || z.Size > c.maxLayerSize {
		return TarZinfo{}, fmt.Errorf("%w: TarZinfo has span size %d and size %d", ErrInvalid, z.SpanSize, z.Size)
	}
	if z.Spans() > int64(c.maxSpans) {
		return TarZinfo{}, fmt.Errorf("%w: TarZinfo makes %d spans, over the limit of %d", ErrTooLarge, z.Spans(), c.maxSpans)
	}
	return z, nil
}

// Encode returns z as soci encodes it.
func (z TarZinfo) Encode() []byte {
	b := flatbuffers.NewBuilder(64)
	b.StartObject(tarZinfoFields)
	b.PrependInt32Slot(0, z.Version, 0)
	b.PrependInt64Slot(1, z.SpanSize, 0)
	b.PrependInt64Slot(2, z.Size, 0)
	b.Finish(b.EndObject())
	return b.FinishedBytes()
}
