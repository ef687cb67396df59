package reader

import (
	"bytes"
	"context"
	"testing"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/toc"
)

// The writer ends zstd:chunked blobs with the 48-byte footer, which does
// not locate the tar-split. Open without annotations finds it after the
// TOC, in the request that fetches the TOC: one request when the tail
// holds the index, and otherwise a second one, of one range for both.
func TestZstdChunkedOpensTheFooterEveryReaderKnows(t *testing.T) {
	input := zstdChunkedInput(t, 0o644)
	blob, _ := buildZstdChunked(t, input)
	footer, err := parseFooter(blob[len(blob)-toc.MaxFooterSize:])
	if err != nil || footer.Size != zstdchunked.LegacyFooterSize || footer.TarSplitLength != 0 {
		t.Fatalf("footer %+v, %v: want the 48-byte one, without a tar-split", footer, err)
	}
	for name, tc := range map[string]struct {
		opts   []Option
		calls  int
		ranges int // 0: not checked (the tail may come in pieces)
	}{
		"default tail": {nil, 1, 0},
		"short tail":   {[]Option{WithTailHint(100)}, 2, 2},
	} {
		t.Run(name, func(t *testing.T) {
			l, f, err := openZstdChunkedBlob(t, blob, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if int(f.calls.Load()) != tc.calls || tc.ranges != 0 && len(f.asked) != tc.ranges {
				t.Errorf("Open fetched %v in %d calls, want %d ranges in %d", f.asked, f.calls.Load(), tc.ranges, tc.calls)
			}
			var out bytes.Buffer
			if _, err := l.WriteTar(context.Background(), &out); err != nil || !bytes.Equal(out.Bytes(), input) {
				t.Errorf("WriteTar: %v; tar equal to the input: %v", err, bytes.Equal(out.Bytes(), input))
			}
		})
	}
}
