package estargz

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"testing/iotest"

	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/internal/toctest"
	"github.com/lazylayer/lazylayer/toc"
)

// FuzzDecodeEStargzFrom checks that decoding a TOC member as it arrives
// gives exactly what decoding it in memory gives: the same TOC, or the
// same error. The JSON is handed to the scanner piece bytes at a time, so
// that the scanner runs out of input everywhere a document can be cut.
func FuzzDecodeEStargzFrom(f *testing.F) {
	goldens, _ := filepath.Glob("testdata/*.toc.json")
	for _, name := range goldens {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, int64(1<<40), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, tocOffset int64, piece uint8) {
		var member bytes.Buffer
		if err := WriteTOCMember(&member, data, 1); err != nil {
			t.Fatal(err)
		}
		opts := toctest.FuzzLimits
		want, wantErr := Decode(member.Bytes(), tocOffset, opts...)
		got, js, err := decodeEStargzFrom(iotest.HalfReader(bytes.NewReader(member.Bytes())), tocOffset,
			toc.NewLimits(opts...), 1+int(piece)%16)
		switch {
		case (err == nil) != (wantErr == nil):
			t.Fatalf("streamed error %v, in memory %v", err, wantErr)
		case err != nil && err.Error() != wantErr.Error():
			t.Fatalf("errors differ:\nstreamed:  %v\nin memory: %v", err, wantErr)
		case !reflect.DeepEqual(got, want):
			t.Fatalf("TOCs differ:\nstreamed:  %+v\nin memory: %+v", got, want)
		case js != nil && !bytes.Equal(js, data):
			t.Fatalf("returned JSON differs from the member's")
		}
	})
}

// TestDecodeEStargzFromGoldens decodes the TOC members of the reference's
// blobs as they arrive a byte at a time.
func TestDecodeEStargzFromGoldens(t *testing.T) {
	blobs, _ := filepath.Glob("testdata/estargz-*.blob")
	if len(blobs) == 0 {
		t.Fatal("no golden blobs")
	}
	for _, name := range blobs {
		blob, footer := toctest.ReadGoldenFooter(t, filepath.Base(name), ParseFooter)
		member := blob[footer.TOCOffset : len(blob)-footer.Size]
		want, err := Decode(member, footer.TOCOffset)
		if err != nil {
			t.Fatal(err)
		}
		for _, piece := range []int{1, 7, tocjson.StreamPiece} {
			got, js, err := decodeEStargzFrom(iotest.OneByteReader(bytes.NewReader(blob[footer.TOCOffset:])),
				footer.TOCOffset, toc.NewLimits(), piece)
			if err != nil {
				t.Fatalf("%s, pieces of %d: %v", name, piece, err)
			}
			if !reflect.DeepEqual(got, want) || len(js) == 0 {
				t.Errorf("%s, pieces of %d: streamed TOC differs from the in-memory one", name, piece)
			}
		}
	}
}

// TestDecodeEStargzFromLargeTOC decodes a TOC whose JSON outgrows the
// decoder's first buffer, as a large layer's does.
func TestDecodeEStargzFromLargeTOC(t *testing.T) {
	var doc bytes.Buffer
	doc.WriteString(`{"version":1,"entries":[`)
	for i := range 50000 {
		if i > 0 {
			doc.WriteString(",")
		}
		fmt.Fprintf(&doc, `{"name":"dir%d/file-%d","type":"reg","size":1,"offset":%d,"digest":"sha256:%064d","chunkDigest":"sha256:%064d"}`, i%100, i, i*100, i, i)
	}
	doc.WriteString("]}")
	var member bytes.Buffer
	if err := WriteTOCMember(&member, doc.Bytes(), 6); err != nil {
		t.Fatal(err)
	}
	want, err := Decode(member.Bytes(), 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	got, js, err := DecodeFrom(iotest.HalfReader(bytes.NewReader(member.Bytes())), 1<<40)
	if err != nil {
		t.Fatalf("%d-byte TOC: %v", doc.Len(), err)
	}
	if !reflect.DeepEqual(got, want) || !bytes.Equal(js, doc.Bytes()) {
		t.Error("streamed TOC differs from the in-memory one")
	}
}
