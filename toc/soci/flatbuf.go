package soci

import (
	"encoding/binary"
	"fmt"
)

// A flatTable reads one table of an untrusted FlatBuffer, checking every
// offset against the buffer: it never panics, whatever the bytes.
type flatTable struct {
	buf    []byte
	pos    uint32 // the table's start
	vtable uint32 // its vtable's start
	vlen   uint32 // the vtable's length in bytes
	size   uint32 // the table's inline length in bytes
}

func u32(buf []byte, at uint64) (uint32, bool) {
	if at+4 > uint64(len(buf)) {
		return 0, false
	}
	return binary.LittleEndian.Uint32(buf[at:]), true
}

// rootTable returns the table a FlatBuffer's root offset points to.
func rootTable(buf []byte) (flatTable, error) {
	off, ok := u32(buf, 0)
	if !ok {
		return flatTable{}, fmt.Errorf("%w: %d bytes hold no root offset", ErrInvalid, len(buf))
	}
	return tableAt(buf, uint64(off))
}

func tableAt(buf []byte, pos uint64) (flatTable, error) {
	soff, ok := u32(buf, pos)
	if !ok {
		return flatTable{}, fmt.Errorf("%w: table at %d is outside the buffer", ErrInvalid, pos)
	}
	vt := int64(pos) - int64(int32(soff))
	if vt < 0 || vt%2 != 0 || vt+4 > int64(len(buf)) {
		return flatTable{}, fmt.Errorf("%w: vtable of table at %d is outside the buffer", ErrInvalid, pos)
	}
	vlen := uint32(binary.LittleEndian.Uint16(buf[vt:]))
	size := uint32(binary.LittleEndian.Uint16(buf[vt+2:]))
	if vlen < 4 || vlen%2 != 0 || vt+int64(vlen) > int64(len(buf)) || size < 4 || pos+uint64(size) > uint64(len(buf)) {
		return flatTable{}, fmt.Errorf("%w: table at %d or its vtable is outside the buffer", ErrInvalid, pos)
	}
	return flatTable{buf: buf, pos: uint32(pos), vtable: uint32(vt), vlen: vlen, size: size}, nil
}

// field returns where field slot's value is, or 0 when the table lacks
// it; the value's width must fit in the table.
func (t flatTable) field(slot int, width uint32) (uint64, error) {
	at := 4 + 2*uint32(slot)
	if at+2 > t.vlen {
		return 0, nil
	}
	off := uint32(binary.LittleEndian.Uint16(t.buf[t.vtable+at:]))
	if off == 0 {
		return 0, nil
	}
	if off < 4 || off+width > t.size {
		return 0, fmt.Errorf("%w: field %d of table at %d is outside the table", ErrInvalid, slot, t.pos)
	}
	return uint64(t.pos) + uint64(off), nil
}

func (t flatTable) int64(slot int) (int64, error) {
	at, err := t.field(slot, 8)
	if at == 0 {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint64(t.buf[at:])), nil
}

func (t flatTable) uint32(slot int) (uint32, error) {
	at, err := t.field(slot, 4)
	if at == 0 {
		return 0, err
	}
	return binary.LittleEndian.Uint32(t.buf[at:]), nil
}

func (t flatTable) int8(slot int, def int8) (int8, error) {
	at, err := t.field(slot, 1)
	if at == 0 {
		return def, err
	}
	return int8(t.buf[at]), nil
}

// ref returns where the string, vector or table field slot refers to, or
// 0 when the table lacks it.
func (t flatTable) ref(slot int) (uint64, error) {
	at, err := t.field(slot, 4)
	if at == 0 {
		return 0, err
	}
	return follow(t.buf, at)
}

// follow returns where the offset at at points.
func follow(buf []byte, at uint64) (uint64, error) {
	off, ok := u32(buf, at)
	if !ok || at+uint64(off) >= uint64(len(buf)) {
		return 0, fmt.Errorf("%w: offset at %d points outside the buffer", ErrInvalid, at)
	}
	return at + uint64(off), nil
}

// bytes returns the vector of bytes (or the string) field slot refers to;
// a missing field reads as empty.
func (t flatTable) bytes(slot int) ([]byte, error) {
	at, err := t.ref(slot)
	if at == 0 {
		return nil, err
	}
	n, ok := u32(t.buf, at)
	if !ok || at+4+uint64(n) > uint64(len(t.buf)) {
		return nil, fmt.Errorf("%w: vector at %d is outside the buffer", ErrInvalid, at)
	}
	return t.buf[at+4 : at+4+uint64(n)], nil
}

// vector returns where the elements of the vector of offsets field slot
// refers to start, and how many there are; each is 4 bytes.
func (t flatTable) vector(slot int) (start uint64, n int, err error) {
	at, err := t.ref(slot)
	if at == 0 {
		return 0, 0, err
	}
	count, ok := u32(t.buf, at)
	if !ok || at+4+4*uint64(count) > uint64(len(t.buf)) {
		return 0, 0, fmt.Errorf("%w: vector at %d is outside the buffer", ErrInvalid, at)
	}
	return at + 4, int(count), nil
}

// table returns the table field slot refers to; ok is false when the
// table lacks the field.
func (t flatTable) table(slot int) (flatTable, bool, error) {
	at, err := t.ref(slot)
	if at == 0 {
		return flatTable{}, false, err
	}
	sub, err := tableAt(t.buf, at)
	return sub, err == nil, err
}

// stringAt returns the string the offset at at refers to.
func stringAt(buf []byte, at uint64) ([]byte, error) {
	s, err := follow(buf, at)
	if err != nil {
		return nil, err
	}
	n, ok := u32(buf, s)
	if !ok || s+4+uint64(n) > uint64(len(buf)) {
		return nil, fmt.Errorf("%w: string at %d is outside the buffer", ErrInvalid, s)
	}
	return buf[s+4 : s+4+uint64(n)], nil
}
