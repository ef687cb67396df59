package toc

import (
	"bytes"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestMemberRoundTripSmoke(t *testing.T) {
	in := &TOC{Entries: []*Entry{
		{Name: "a", Type: TypeDir, Mode: 0o755, ModTime: time.Unix(1700000000, 0).UTC()},
		{Name: "a/f", Type: TypeReg, Size: 10, Digest: digest.FromString("x"), Chunks: []Chunk{
			{Offset: 0, Size: 6, FrameOffset: 100, Digest: digest.FromString("y")},
			{Offset: 6, Size: 4, FrameOffset: 200, Digest: digest.FromString("z")},
		}},
	}}
	js, err := MarshalEStargz(in)
	if err != nil {
		t.Fatal(err)
	}
	var blob bytes.Buffer
	if err := WriteEStargzTOCMember(&blob, js, 9); err != nil {
		t.Fatal(err)
	}
	out, err := DecodeEStargz(blob.Bytes(), 300)
	if err != nil {
		t.Fatal(err)
	}
	js2, err := MarshalEStargz(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(js, js2) {
		t.Fatalf("round trip differs:\n%s\n%s", js, js2)
	}
	if c := out.Entries[1].Chunks[1]; c.FrameEnd != 300 || out.Entries[1].Chunks[0].FrameEnd != 200 {
		t.Fatalf("frame ends: %+v", out.Entries[1].Chunks)
	}
	t.Logf("%s", js)
}
