package writer

import (
	"bytes"
	"testing"
)

func TestSpareBuffersStayWithinLimit(t *testing.T) {
	s := spareBuffers{limit: 3 * spareUnit}
	for _, n := range []int{1, 2, 1, 2} {
		s.put(make([]byte, 0, n*spareUnit))
	}
	if s.bytes > s.limit {
		t.Fatalf("spares hold %d bytes, limit %d", s.bytes, s.limit)
	}
	// The smallest were dropped: a buffer of 2 units is still there.
	if b := s.get(2 * spareUnit); cap(b) != 2*spareUnit || len(b) != 0 {
		t.Errorf("get(2 units): len %d cap %d, want an empty spare of 2 units", len(b), cap(b))
	}
	// Nothing fits: a new buffer rounded up to the unit.
	if b := s.get(3*spareUnit + 1); cap(b) != 4*spareUnit {
		t.Errorf("get(3 units + 1): cap %d, want %d", cap(b), 4*spareUnit)
	}
}

func TestSpareBuffersGrowKeepsContents(t *testing.T) {
	var s spareBuffers
	s.limit = 4 * spareUnit
	raw := []byte("header")
	raw = s.grow(raw, keptBuffer)
	if !bytes.Equal(raw, []byte("header")) || cap(raw) < len("header")+keptBuffer {
		t.Fatalf("grow: %q with cap %d", raw, cap(raw))
	}
}
