package soci

import (
	"bytes"
	"slices"
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

// FuzzDecodeIndexManifest checks that DecodeIndexManifest never panics,
// and that a v2 index it accepts encodes to one it accepts, with the
// same zTOCs and prefetch artifacts.
func FuzzDecodeIndexManifest(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeIndexManifest(b, WithMaxIndexBlobs(64))
		if err != nil {
			return
		}
		m.Match(nil)
		if m.Version != IndexV2 || m.Subject != nil {
			return
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("accepted index does not encode: %v", err)
		}
		again, err := DecodeIndexManifest(enc)
		if err != nil {
			t.Fatalf("re-encoded index does not decode: %v", err)
		}
		if len(again.Ztocs) != len(m.Ztocs) || len(again.Prefetches) != len(m.Prefetches) {
			t.Fatal("blobs change through encoding")
		}
	})
}

// FuzzDecodePrefetch checks that DecodePrefetch never panics, and that
// what it accepts encodes to an artifact of the same spans.
func FuzzDecodePrefetch(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		spans, err := DecodePrefetch(b)
		if err != nil {
			return
		}
		enc, err := EncodePrefetch(spans)
		if err != nil {
			t.Fatalf("accepted spans do not encode: %v", err)
		}
		again, err := DecodePrefetch(enc)
		if err != nil || !slices.Equal(again, spans) {
			t.Fatalf("spans change through encoding: %v", err)
		}
	})
}
