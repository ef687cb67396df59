package writer

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/lazylayer/lazylayer/toc/estargz"

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
			footer, err := estargz.ParseFooter(b[len(b)-toc.MaxFooterSize:])
			if err != nil {
				t.Fatalf("footer: %v", err)
			}
			if _, err := estargz.Decode(b[footer.TOCOffset:len(b)-footer.Size], footer.TOCOffset); err != nil {
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

		for _, least := range []int64{0, DefaultContentChunkMin} {
			var blob bytes.Buffer
			res, err := Build(context.Background(), &blob, bytes.NewReader(input), WithFormat(toc.FormatZstdChunked), WithChunkSize(1500), WithContentChunkMin(least))
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
		}
	})
}

// FuzzChunkerMatchesNaiveRule checks the chunker against the chunking
// rule written plainly (naiveCuts), on contents built from spec: runs of
// zeros around the zeros-chunk threshold, between random bytes that hold
// zeros of their own.
func FuzzChunkerMatchesNaiveRule(f *testing.F) {
	f.Add([]byte{0x80, 0x01, 0x10, 0x00, 0xff, 0x07, 0x7f, 0x0f}, uint16(1500), uint16(0))
	f.Add([]byte{0x81, 0x02, 0x40, 0x00, 0x20, 0x0f, 0xfe, 0x03}, uint16(0x8000), uint16(0x1000))
	f.Fuzz(func(t *testing.T, spec []byte, maxSize, minData uint16) {
		data := chunkerInput(spec)
		size, least := 1+int(maxSize)*4, int(minData)*4
		checkNaiveRule(t, data, size, least)
	})
}

// chunkerInput expands each pair of bytes of spec into a run: with the
// first byte's low bit clear, of up to 2 KiB of zeros; with it set, of up
// to 64 KiB of random bytes, one in 64 of them zero.
func chunkerInput(spec []byte) []byte {
	var data []byte
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i+1 < len(spec) && len(data) < 1<<20; i += 2 {
		op, arg := spec[i], spec[i+1]
		if op&1 == 0 {
			data = append(data, make([]byte, int(op>>1)<<4|int(arg&15))...)
			continue
		}
		for range int(op>>1)<<9 | int(arg) {
			if rng.IntN(64) == 0 {
				data = append(data, 0)
			} else {
				data = append(data, byte(rng.Uint32()))
			}
		}
	}
	return data
}
