package zstdchunked

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"testing/iotest"

	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/internal/toctest"
	"github.com/lazylayer/lazylayer/toc"
)

// zstdChunkedGoldens are blobs of containers/storage's and estargz's
// zstd:chunked writers, in testdata.
var zstdChunkedGoldens = []string{"zstdchunked-storage.blob", "zstdchunked-estargz.blob"}

// FuzzDecodeZstdChunkedFrom checks that a zstd:chunked TOC decoded as it
// arrives, a few bytes at a time, gives what the in-memory decoder gives:
// the same TOC and tar-split digest, or an error of the same kind. data is
// TOC JSON, framed here, or with raw set a compressed TOC as is.
func FuzzDecodeZstdChunkedFrom(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, raw, lengthKnown bool, piece uint8) {
		compressed, length := data, int64(0)
		if !raw {
			compressed = zstdStored(data)
			if lengthKnown {
				length = int64(len(data))
			}
		}
		footer := toc.Footer{Format: toc.FormatZstdChunked, TOCOffset: 1 << 20, TOCLength: int64(len(compressed)), TOCUncompressedLength: length}
		opts := toctest.FuzzLimits
		want, wantSplit, wantErr := Decode(compressed, footer, opts...)
		got, gotSplit, err := decodeZstdChunkedFrom(iotest.HalfReader(bytes.NewReader(compressed)), footer,
			toc.NewLimits(opts...), 1+int(piece)%16)
		switch {
		case (err == nil) != (wantErr == nil):
			t.Fatalf("streamed error %v, in memory %v", err, wantErr)
		case err != nil:
			for _, kind := range []error{toc.ErrInvalidTOC, toc.ErrTOCTooLarge, toc.ErrUnsupportedVersion} {
				if errors.Is(err, kind) != errors.Is(wantErr, kind) {
					t.Fatalf("errors of different kinds:\nstreamed:  %v\nin memory: %v", err, wantErr)
				}
			}
		case !reflect.DeepEqual(got, want) || gotSplit != wantSplit:
			t.Fatalf("TOCs differ:\nstreamed:  %+v %s\nin memory: %+v %s", got, gotSplit, want, wantSplit)
		}
	})
}

// TestDecodeZstdChunkedFromGoldens decodes the TOCs of containers/storage's
// and estargz's zstd:chunked blobs as they arrive a byte at a time.
func TestDecodeZstdChunkedFromGoldens(t *testing.T) {
	for _, name := range zstdChunkedGoldens {
		blob, footer := toctest.ReadGoldenFooter(t, name, ParseFooter)
		compressed := blob[footer.TOCOffset : footer.TOCOffset+footer.TOCLength]
		want, wantSplit, err := Decode(compressed, footer)
		if err != nil {
			t.Fatal(err)
		}
		for _, piece := range []int{1, 7, tocjson.StreamPiece} {
			// The reader runs on past the TOC: only its bytes are read.
			got, gotSplit, err := decodeZstdChunkedFrom(iotest.OneByteReader(bytes.NewReader(blob[footer.TOCOffset:])),
				footer, toc.NewLimits(), piece)
			if err != nil {
				t.Fatalf("%s, pieces of %d: %v", name, piece, err)
			}
			if !reflect.DeepEqual(got, want) || gotSplit != wantSplit {
				t.Errorf("%s, pieces of %d: streamed TOC differs from the in-memory one", name, piece)
			}
		}
	}
}

// TestDecodeZstdChunkedFromLengthMismatch checks that a TOC longer or
// shorter than its footer says is refused, as in memory.
func TestDecodeZstdChunkedFromLengthMismatch(t *testing.T) {
	js := []byte(`{"version":1,"entries":[]}`)
	compressed, err := CompressFrame(js, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, length := range []int64{int64(len(js)) - 1, int64(len(js)) + 1} {
		footer := toc.Footer{Format: toc.FormatZstdChunked, TOCOffset: 100, TOCLength: int64(len(compressed)), TOCUncompressedLength: length}
		if _, _, err := DecodeFrom(bytes.NewReader(compressed), footer); !errors.Is(err, toc.ErrInvalidTOC) {
			t.Errorf("footer length %d for a %d-byte TOC: got %v, want ErrInvalidTOC", length, len(js), err)
		}
	}
}
