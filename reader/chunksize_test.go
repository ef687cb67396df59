package reader

import (
	"archive/tar"
	"errors"
	"testing"

	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
	"github.com/opencontainers/go-digest"
)

// TestOpenRejectsHugeChunks opens blobs of a few MiB or KiB whose index
// claims a 2 GiB chunk, as much as the frame could expand to: Open fails,
// rather than the first read of a byte allocating 2 GiB.
func TestOpenRejectsHugeChunks(t *testing.T) {
	const huge = 2 << 30
	d := digest.FromString("2 GiB of something")
	file := func(chunks ...toc.Chunk) *toc.Entry {
		e := &toc.Entry{Name: "f", Type: toc.TypeReg, Mode: 0o644, Digest: d, Chunks: chunks}
		for _, c := range chunks {
			e.Size += c.Size
		}
		return e
	}

	// A gzip member can inflate 2 MiB to 2 GiB.
	gzipFrame := pseudoRandom(huge/1024+1<<10, 1)
	estargz := assemble(t, gzipFrame, &toc.TOC{Format: toc.FormatEStargz, Entries: []*toc.Entry{
		file(toc.Chunk{Size: huge, Digest: d}),
	}})

	// A zstd frame can decompress 64 KiB to 2 GiB; a zeros chunk needs
	// no frame at all.
	zstdFrame := pseudoRandom(huge/32768+1<<10, 2)
	zstdBlob := func(e *toc.Entry) []byte {
		js, err := toc.MarshalZstdChunked(&toc.TOC{Format: toc.FormatZstdChunked, Entries: []*toc.Entry{e}}, "")
		if err != nil {
			t.Fatal(err)
		}
		return reassemble(t, zstdFrame, js, []byte("unused: the TOC pins no tar-split"))
	}
	zstdData := zstdBlob(file(toc.Chunk{Size: huge, Digest: d, FrameEnd: int64(len(zstdFrame))}))
	zstdZeros := zstdBlob(file(
		toc.Chunk{Size: huge, Digest: d, Zeros: true, FrameEnd: int64(len(zstdFrame)) - 1},
		toc.Chunk{Offset: huge, Size: 1, Digest: d, FrameOffset: int64(len(zstdFrame)) - 1, FrameEnd: int64(len(zstdFrame))},
	))

	for name, blob := range map[string][]byte{"estargz": estargz, "zstd:chunked": zstdData, "zstd:chunked zeros": zstdZeros} {
		l, err := openBlob(blob)
		if err == nil {
			l.Close()
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %d-byte blob with a 2 GiB chunk: error %v, want ErrCorrupt", name, len(blob), err)
		}
	}
}

// TestChunkLimitAdmitsWriterChunks opens blobs whose chunks are exactly
// as large as the limit, and refuses them under a limit one byte lower.
func TestChunkLimitAdmitsWriterChunks(t *testing.T) {
	const chunk = 1 << 20
	content := pseudoRandom(3*chunk+100, 3)
	tarData := tarOf(t, []tar.Header{{Typeflag: tar.TypeReg, Name: "f", Mode: 0o644}}, content)
	for _, format := range []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked} {
		blob, _ := writerBlob(t, tarData, writer.WithFormat(format), writer.WithChunkSize(chunk), writer.WithFixedChunks())
		l, err := openBlob(blob, WithMaxChunkSize(chunk))
		if err != nil {
			t.Fatalf("%v: %v", format, err)
		}
		got, err := l.ReadFile("f")
		l.Close()
		if err != nil || string(got) != string(content) {
			t.Errorf("%v: ReadFile = %d bytes, %v", format, len(got), err)
		}
		if l, err := openBlob(blob, WithMaxChunkSize(chunk-1)); !errors.Is(err, ErrCorrupt) {
			if err == nil {
				l.Close()
			}
			t.Errorf("%v: chunks one byte over the limit: error %v, want ErrCorrupt", format, err)
		}
	}
}

// TestChunkLimitBoundsFrames checks the limit on what loading a chunk
// decompresses from its frame, and on the frame itself: chunks of 40 KiB
// packed in one gzip member end past a 64 KiB limit, and a chunk of a few
// bytes may not sit in a frame of MiBs.
func TestChunkLimitBoundsFrames(t *testing.T) {
	b := &blobBuilder{share: true}
	b.add(&toc.Entry{Name: "a"}, pseudoRandom(40<<10, 4))
	b.add(&toc.Entry{Name: "b"}, pseudoRandom(40<<10, 5))
	shared, sharedIndex := b.finish()

	b = &blobBuilder{}
	b.add(&toc.Entry{Name: "small"}, []byte("small"))
	small, smallIndex := b.finish()
	small = append(small, pseudoRandom(1<<20, 6)...)
	smallIndex.Entries[0].Chunks[0].FrameEnd = int64(len(small))

	for _, tc := range []struct {
		name  string
		blob  []byte
		index *toc.TOC
	}{
		{"shared member", shared, sharedIndex},
		{"long frame", small, smallIndex},
	} {
		_, err := newLayer(t.Context(), nil, tc.index, int64(len(tc.blob)), newConfig([]Option{WithMaxChunkSize(64 << 10)}))
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error %v, want ErrCorrupt", tc.name, err)
		}
		l, _ := testLayer(t, tc.blob, tc.index) // the default limit admits both
		l.Close()
	}
}
