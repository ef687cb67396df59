package soci

import (
	"bytes"
	"testing"
)

// FuzzDecodeZtoc checks that Decode never panics, and that what it
// accepts encodes back to the bytes it came from.
func FuzzDecodeZtoc(f *testing.F) {
	f.Fuzz(func(t *testing.T, buf []byte) {
		z, err := Decode(buf, WithMaxFiles(1000), WithMaxSpans(1000))
		if err != nil {
			return
		}
		enc, err := Encode(z)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(enc); err != nil {
			t.Fatalf("re-encoded zTOC does not decode: %v", err)
		}
	})
}

// FuzzDecodeCheckpoints checks that DecodeCheckpoints never panics, and
// that what it accepts encodes back to the same blob.
func FuzzDecodeCheckpoints(f *testing.F) {
	f.Fuzz(func(t *testing.T, blob []byte) {
		cp, err := DecodeCheckpoints(blob)
		if err != nil {
			return
		}
		if !bytes.Equal(cp.Encode(), blob) {
			t.Fatal("blob changes through decoding")
		}
	})
}
