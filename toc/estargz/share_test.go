package estargz

import (
	"testing"
	"unsafe"
)

// TestUnmarshalEStargzSharesSingleChunkDigest checks that a file of one
// chunk keeps one digest string for the file and its chunk: they are the
// same 71 bytes, and a layer of small files has hundreds of thousands.
func TestUnmarshalEStargzSharesSingleChunkDigest(t *testing.T) {
	js, err := Marshal(richTOC())
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(js, 10000)
	if err != nil {
		t.Fatal(err)
	}
	shared := 0
	for _, e := range got.Entries {
		if len(e.Chunks) != 1 || e.Chunks[0].Digest != e.Digest {
			continue
		}
		if unsafe.StringData(string(e.Chunks[0].Digest)) != unsafe.StringData(string(e.Digest)) {
			t.Errorf("%q: the chunk's digest is a copy of the file's", e.Name)
		}
		shared++
	}
	if shared == 0 {
		t.Fatal("no file of one chunk whose digest is its chunk's")
	}
}
