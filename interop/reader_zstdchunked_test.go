package interop

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/interop/internal/corpus"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// TestReaderReadsReferenceZstdChunked reads zstd:chunked blobs written by
// the reference estargz/zstdchunked compressor, pinned by the
// manifest-checksum annotation it emits (the digest of the compressed TOC).
func TestReaderReadsReferenceZstdChunked(t *testing.T) {
	t.Parallel()
	kinds := corpus.KindsTar(t)
	want := tarState(t, kinds)
	for _, tc := range []struct {
		name  string
		level zstd.EncoderLevel
		opts  []estargz.Option
	}{
		{"default", zstd.SpeedDefault, nil},
		{"chunk-64k", zstd.SpeedFastest, []estargz.Option{estargz.WithChunkSize(64 << 10)}},
		{"prioritized", zstd.SpeedBetterCompression, []estargz.Option{estargz.WithPrioritizedFiles([]string{"usr/lib/text.txt"})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blob, tocDigest := referenceZstdChunkedBlob(t, kinds, tc.level, tc.opts...)
			l, err := reader.Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))), reader.WithTOCDigest(tocDigest))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if l.TOC().Format != toc.FormatZstdChunked {
				t.Errorf("format %v", l.TOC().Format)
			}
			checkLayer(t, l, want)
			// A pinned digest that does not match is refused.
			_, err = reader.Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))),
				reader.WithTOCDigest(digest.FromString("another TOC")))
			if !errors.Is(err, reader.ErrTOCDigest) {
				t.Errorf("wrong TOC digest: error = %v", err)
			}
		})
	}
}

// referenceZstdChunkedBlob builds a zstd:chunked blob with the reference
// writer and returns it with its manifest-checksum annotation.
func referenceZstdChunkedBlob(tb testing.TB, tarData []byte, level zstd.EncoderLevel, opts ...estargz.Option) ([]byte, digest.Digest) {
	tb.Helper()
	c := &zstdchunked.Compressor{CompressionLevel: level, Metadata: map[string]string{}}
	compression := struct {
		*zstdchunked.Compressor
		*zstdchunked.Decompressor
	}{c, &zstdchunked.Decompressor{}}
	rc, err := estargz.Build(io.NewSectionReader(bytes.NewReader(tarData), 0, int64(len(tarData))),
		append(opts, estargz.WithCompression(compression))...)
	if err != nil {
		tb.Fatal(err)
	}
	defer rc.Close()
	blob, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatal(err)
	}
	d, err := digest.Parse(c.Metadata[zstdchunked.ManifestChecksumAnnotation])
	if err != nil {
		tb.Fatal(err)
	}
	return blob, d
}
