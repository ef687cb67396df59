package reader

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/klauspost/compress/zstd"
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

	// A zstd frame can decompress 64 KiB to 2 GiB.
	zstdFrame := pseudoRandom(huge/32768+1<<10, 2)
	zstdBlob := func(e *toc.Entry) []byte {
		js, err := zstdchunked.Marshal(&toc.TOC{Format: toc.FormatZstdChunked, Entries: []*toc.Entry{e}}, "")
		if err != nil {
			t.Fatal(err)
		}
		return reassemble(t, zstdFrame, js, unusedTarSplit(t))
	}
	zstdData := zstdBlob(file(toc.Chunk{Size: huge, Digest: d, FrameEnd: int64(len(zstdFrame))}))

	for name, blob := range map[string][]byte{"estargz": estargz, "zstd:chunked": zstdData} {
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

// TestZerosChunksCostNoMemory reads a file whose hole is one zstd:chunked
// zeros chunk far over the chunk limit, as containers/storage writes a
// sparse file's hole: the layer opens, and reads of the hole, through every
// read path, neither build the chunk nor hash it more than once.
func TestZerosChunksCostNoMemory(t *testing.T) {
	const hole = 4 * DefaultMaxChunkSize
	tail := []byte("x")
	zeroSum := sha256.New()
	for range hole / len(zeroPage) {
		zeroSum.Write(zeroPage[:])
	}
	zerosDigest := digest.NewDigestFromBytes(digest.SHA256, zeroSum.Sum(nil))
	zeroSum.Write(tail)
	fileDigest := digest.NewDigestFromBytes(digest.SHA256, zeroSum.Sum(nil))

	// The stream holds the hole as a frame, which readers never fetch.
	var holeBuf bytes.Buffer
	enc, err := zstd.NewWriter(&holeBuf)
	if err != nil {
		t.Fatal(err)
	}
	for range hole / len(zeroPage) {
		enc.Write(zeroPage[:])
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	holeFrame := holeBuf.Bytes()
	frame, err := zstdchunked.CompressFrame(tail, 3)
	if err != nil {
		t.Fatal(err)
	}
	end := int64(len(holeFrame) + len(frame))
	open := func(zeros digest.Digest) *Layer {
		e := &toc.Entry{Name: "sparse", Type: toc.TypeReg, Mode: 0o644, Size: hole + 1, Digest: fileDigest, Chunks: []toc.Chunk{
			{Size: hole, Digest: zeros, Zeros: true, FrameEnd: int64(len(holeFrame))},
			{Offset: hole, Size: 1, Digest: digest.FromBytes(tail), FrameOffset: int64(len(holeFrame)), FrameEnd: end},
		}}
		js, err := zstdchunked.Marshal(&toc.TOC{Format: toc.FormatZstdChunked, Entries: []*toc.Entry{e}}, "")
		if err != nil {
			t.Fatal(err)
		}
		l, err := openBlob(reassemble(t, append(holeFrame, frame...), js, unusedTarSplit(t)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}

	l := open(zerosDigest)
	f, err := l.Open("sparse")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ra := f.(io.ReaderAt)
	allocated := func(read func()) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		read()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	buf := bytes.Repeat([]byte{0xff}, 4096)
	for _, at := range []int64{0, hole / 2, hole - 4095} {
		if got := allocated(func() {
			n, err := ra.ReadAt(buf, at)
			if n != len(buf) || (err != nil && err != io.EOF) {
				t.Fatalf("ReadAt(%d) = %d, %v", at, n, err)
			}
		}); got > 1<<20 {
			t.Errorf("ReadAt(%d) of a %d-byte hole allocated %d bytes", at, hole, got)
		}
		if at < hole-4095 && !bytes.Equal(buf, make([]byte, len(buf))) {
			t.Errorf("ReadAt(%d) of the hole read non-zero bytes", at)
		}
	}
	if buf[len(buf)-1] != 'x' {
		t.Errorf("the byte after the hole reads %q", buf[len(buf)-1])
	}
	hashed := 0
	l.zeroSums.Range(func(any, any) bool { hashed++; return true })
	if hashed != 1 {
		t.Errorf("the hole's digest was checked %d times, want once", hashed)
	}

	// A whole sequential read streams the hole, and checks the file digest.
	if got := allocated(func() {
		f, _ := l.Open("sparse")
		defer f.Close()
		n, err := io.Copy(io.Discard, struct{ io.Reader }{f})
		if n != hole+1 || err != nil {
			t.Fatalf("io.Copy = %d, %v", n, err)
		}
	}); got > 8<<20 {
		t.Errorf("reading the file sequentially allocated %d bytes", got)
	}
	// A hole whose digest is not that of its zeros reads as damage.
	l = open(digest.FromString("not zeros"))
	if _, err := l.Open("sparse"); err != nil {
		t.Fatal(err)
	}
	f, _ = l.Open("sparse")
	defer f.Close()
	if _, err := f.(io.ReaderAt).ReadAt(buf, 10); !errors.Is(err, ErrChunkDigest) {
		t.Errorf("ReadAt of a hole with a wrong digest: %v, want ErrChunkDigest", err)
	}
}

// unusedTarSplit is a tar-split frame's payload for blobs whose TOC pins
// none: it is never parsed.
func unusedTarSplit(t *testing.T) []byte {
	t.Helper()
	compressed, err := zstdchunked.CompressFrame([]byte("unused: the TOC pins no tar-split"), 3)
	if err != nil {
		t.Fatal(err)
	}
	return compressed
}
