package writer

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// FuzzBuild feeds arbitrary input to Build. It must never panic, and
// whatever it accepts must come out as a blob whose TOC decodes and whose
// decompressed stream matches the DiffID; for zstd:chunked, a plain tar
// input must come out unchanged and the tar-split must match the TOC.
func FuzzBuild(f *testing.F) {
	f.Fuzz(func(t *testing.T, input []byte) {
		for _, opts := range [][]Option{
			{WithChunkSize(64)},
			{WithChunkSize(100), WithMinChunkSize(300), WithPrioritizedFiles([]string{"a/h", "a/f"}), WithAllowMissingPrioritized()},
		} {
			var blob bytes.Buffer
			res, err := Build(context.Background(), &blob, bytes.NewReader(input), opts...)
			if err != nil {
				continue
			}
			b := blob.Bytes()
			footer, err := toc.ParseFooter(b[len(b)-toc.MaxFooterSize:])
			if err != nil {
				t.Fatalf("footer: %v", err)
			}
			if _, err := toc.DecodeEStargz(b[footer.TOCOffset:len(b)-footer.Size], footer.TOCOffset); err != nil {
				t.Fatalf("TOC: %v", err)
			}
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			out, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("gunzip: %v", err)
			}
			if digest.FromBytes(out) != res.DiffID {
				t.Fatal("DiffID does not match the gunzipped blob")
			}
		}

		var blob bytes.Buffer
		res, err := Build(context.Background(), &blob, bytes.NewReader(input), WithFormat(toc.FormatZstdChunked), WithChunkSize(1500))
		if err != nil {
			return
		}
		decodeZstdChunked(t, blob.Bytes())
		out := unzstd(t, blob.Bytes())
		if digest.FromBytes(out) != res.DiffID {
			t.Fatal("DiffID does not match the decompressed blob")
		}
		if !bytes.HasPrefix(input, gzipMagic) && !bytes.HasPrefix(input, zstdMagic) && !bytes.Equal(out, input) {
			t.Fatal("zstd:chunked blob does not decompress to the input tar")
		}
	})
}
