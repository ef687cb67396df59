package writer

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/internal/iox"

	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// zstdEncoder compresses each unit into one independent zstd frame that
// records its content size, so a reader can decompress any frame alone.
// Frames carry no checksum: every chunk has a sha256 in the TOC, and the
// checksum would cost 4 bytes a frame. Literals are entropy-coded even in
// blocks without a match, as klauspost does only above its default
// speed: frames of one small chunk often have no match yet skewed bytes
// (on a GOROOT tar, 0.26% smaller at no measurable CPU cost).
type zstdEncoder struct{ zw *zstd.Encoder }

func newZstdEncoder(level int) (frameEncoder, error) {
	zw, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false),
		zstd.WithAllLitEntropyCompression(true))
	if err != nil {
		return nil, err
	}
	return &zstdEncoder{zw: zw}, nil
}

func (z *zstdEncoder) encode(dst, src []byte) ([]byte, error) {
	return z.zw.EncodeAll(src, dst), nil
}

// buildZstdChunked writes the tar stream in as a zstd:chunked blob: the
// input's bytes, unchanged and in order, as a series of zstd frames (one
// starting at each chunk of file content), followed by the TOC, the
// tar-split and the footer in skippable frames.
func buildZstdChunked(ctx context.Context, w io.Writer, in io.Reader, cfg *config, res *Result) error {
	sink := newBlobSink(w)
	pipe, err := startPipeline(ctx, sink, cfg.concurrency, cfg.memberLimit(), func() (frameEncoder, error) {
		return newZstdEncoder(cfg.level)
	})
	if err != nil {
		return fmt.Errorf("writer: zstd encoder: %w", err)
	}
	// The tar-split follows the TOC, which is written last: it is held,
	// compressed.
	var tarSplit pagedBytes
	l, err := newChunkedLayout(ctx, cfg, pipe, &tarSplit)
	if err == nil {
		if err = l.addAll(newEntryReader(in, nil)); err == nil {
			l.finish()
		}
	}
	if perr := pipe.close(); err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	return l.finishBlob(sink, &tarSplit, res)
}

// chunkedLayout lays a tar stream out into zstd:chunked frames and
// describes it in TOC entries and a tar-split stream. Each chunk of a
// regular file's content starts a frame; the bytes between contents
// (padding, headers, the end of the archive) go into whichever frame is
// open, as in eStargz, so they share the last chunk's frame rather than
// pay for frames and entropy tables of their own (readers read a chunk's
// size and ignore what follows it in the frame). A frame of headers alone
// (at the start, or when the open one is full) is split only to bound its
// size. The layout depends only on the input and the options, never on
// timing.
type chunkedLayout struct {
	ctx context.Context
	cfg *config
	frames

	split  *zstdchunked.TarSplitWriter
	chunks *chunker
	crc    hash.Hash64
}

func newChunkedLayout(ctx context.Context, cfg *config, pipe *pipeline, tarSplit io.Writer) (*chunkedLayout, error) {
	split, err := zstdchunked.NewTarSplitWriter(tarSplit, cfg.indexLevel(), zstdchunked.IndexWindow)
	if err != nil {
		return nil, fmt.Errorf("writer: %w", err)
	}
	f, err := newFrames(pipe)
	if err != nil {
		return nil, err
	}
	return &chunkedLayout{
		ctx: ctx, cfg: cfg, frames: f,
		split:  split,
		chunks: newChunker(int(cfg.chunkSize), int(min(cfg.contentMin, cfg.chunkSize)), cfg.fixedChunks),
		crc:    zstdchunked.NewTarSplitCRC(),
	}, nil
}

// addAll lays out every entry of er, then the end of the archive and any
// bytes after it.
func (l *chunkedLayout) addAll(er *entryReader) error {
	for {
		rec, err := er.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := l.add(rec); err != nil {
			return err
		}
	}
	if !iox.AllZero(er.trailer()) {
		return fmt.Errorf("writer: bytes other than zeros in the last entry's padding: %w", errNotZeros)
	}
	if err := l.addSegment(er.trailer()); err != nil {
		return err
	}
	// tar-split records what follows the end-of-archive blocks in
	// segments of at most 1 MiB.
	buf := make([]byte, 1<<20)
	for {
		n, err := er.readRest(buf)
		if !iox.AllZero(buf[:n]) {
			return fmt.Errorf("writer: bytes other than zeros after the end of the archive: %w", errNotZeros)
		}
		if n > 0 {
			if serr := l.addSegment(buf[:n]); serr != nil {
				return serr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("writer: reading input after the end of the archive: %w", err)
		}
	}
}

// add lays out one entry: the bytes before its contents, then its
// contents chunk by chunk.
func (l *chunkedLayout) add(rec *record) error {
	if err := l.ctx.Err(); err != nil {
		return err
	}
	hdr := rec.hdr
	if isSparse(hdr) {
		// The blob must hold the tar's own bytes: the sparse map and
		// only the data it lists. A tar-split file record stands for
		// hdr.Size bytes of contents, the expanded size, so no
		// tar-split can rebuild that tar from the file, and
		// containers/storage would write it corrupt.
		return fmt.Errorf("writer: entry %q: sparse file: zstd:chunked cannot keep its sparse map (no tar-split rebuilds it): %w", untrusted.Short(hdr.Name), ErrUnsupportedEntry)
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		// A global header has no TOC entry: containers/storage refuses
		// it.
		return fmt.Errorf("writer: entry %q: tar type %q in zstd:chunked: %w", hdr.Name, hdr.Typeflag, ErrUnsupportedEntry)
	}
	if pad := len(rec.lead) - len(rec.raw); pad > 0 && !iox.AllZero(rec.lead[:pad]) {
		return fmt.Errorf("writer: entry %q: bytes other than zeros in the padding before it: %w", untrusted.Short(hdr.Name), errNotZeros)
	}
	e, err := tocEntry(hdr)
	if err != nil {
		return err
	}
	// The TOC could not say what containers/storage's check of it
	// against the tar-split compares.
	if e.Type != toc.TypeReg && hdr.Size != 0 {
		return fmt.Errorf("writer: entry %q: %v entry with a size of %d: %w", hdr.Name, e.Type, hdr.Size, ErrUnsupportedEntry)
	}
	if e.Type != toc.TypeSymlink && e.Type != toc.TypeHardlink && hdr.Linkname != "" {
		return fmt.Errorf("writer: entry %q: %v entry with a link target: %w", hdr.Name, e.Type, ErrUnsupportedEntry)
	}
	// zstd:chunked keeps full-precision times and the tar's own names.
	e.ModTime, e.AccessTime, e.ChangeTime = utc(hdr.ModTime), utc(hdr.AccessTime), utc(hdr.ChangeTime)
	e.UserName, e.GroupName = "", ""
	if e.Name != hdr.Name {
		e.TarName = hdr.Name
	}
	var tarLink string
	if e.Type == toc.TypeHardlink && e.LinkName != hdr.Linkname {
		tarLink = hdr.Linkname
	}

	if err := l.addSegment(rec.lead); err != nil {
		return err
	}
	var crc []byte
	if e.Size > 0 {
		if err := l.addContent(e, rec.payload); err != nil {
			return fmt.Errorf("writer: entry %q: %w", hdr.Name, err)
		}
		crc = l.crc.Sum(nil)
	}
	if err := l.split.AddFile(hdr.Name, hdr.Size, crc); err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	l.endEntry(e, tarLink)
	return nil
}

// addSegment appends raw tar bytes that are not file contents to the open
// frame, starting a new frame first if the open one is full.
func (l *chunkedLayout) addSegment(raw []byte) error {
	if len(l.cur.raw) > 0 && len(l.cur.raw)+len(raw) > l.cfg.memberLimit() {
		if err := l.next(); err != nil {
			return err
		}
	}
	l.cur.raw = append(l.cur.raw, raw...)
	if err := l.split.AddSegment(raw); err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	return nil
}

// addContent writes a regular file's content, one frame per chunk, and
// records each chunk and the file's digest and CRC-64. The last chunk's
// frame stays open for the headers that follow.
func (l *chunkedLayout) addContent(e *toc.Entry, payload io.Reader) error {
	l.crc.Reset()
	l.chunks.reset(payload, e.Size)
	var off int64
	for {
		if err := l.ctx.Err(); err != nil {
			return err
		}
		data, zeros, err := l.chunks.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("at offset %d: %w", off, err)
		}
		if err := l.next(); err != nil {
			return err
		}
		inner := len(l.cur.raw)
		l.cur.raw = append(l.pipe.spares.grow(l.cur.raw, len(data)), data...)
		l.crc.Write(data)
		l.addChunk(e, off, inner, len(data), zeros)
		off += int64(len(data))
	}
	if len(l.fileChunks) == 1 {
		// A file of one chunk has no chunk fields in the TOC, so it
		// cannot say that the chunk is all zeros.
		l.fileChunks[0].zeros = false
	}
	return nil
}

// finishBlob appends the TOC, tar-split and footer frames after the data
// frames and fills in res.
func (l *chunkedLayout) finishBlob(sink *blobSink, tarSplit *pagedBytes, res *Result) error {
	if err := l.split.Close(); err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	dataEnd := sink.size
	x := l.index(dataEnd)
	t := toc.TOC{Format: toc.FormatZstdChunked, TarSplitDigest: l.split.Digest()}

	encode := func(w io.Writer) (uncompressed int64, err error) {
		zw, err := zstdchunked.NewFrameWriter(w, l.cfg.indexLevel(), zstdchunked.IndexWindow)
		if err != nil {
			return 0, err
		}
		json := iox.CountingWriter{W: zw}
		enc := zstdchunked.NewEncoder(&json, t.TarSplitDigest)
		err = x.each(false, func(e *logEntry) error {
			// The TOC names entries as the tar does:
			// containers/storage compares them with the tar-split's
			// headers byte for byte.
			if e.TarName != "" {
				e.Name = e.TarName
			}
			if e.tarLink != "" {
				e.LinkName = e.tarLink
			}
			return enc.Encode(&e.Entry)
		})
		if err == nil {
			err = enc.Close()
		}
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		return json.N, err
	}
	// The compressed TOC is made twice rather than held (17 MB for
	// 300,000 small files): once for the length its frame header needs
	// and its digest, once into the blob.
	h := sha256.New()
	compressed := iox.CountingWriter{W: h}
	tocSize, err := encode(&compressed)
	if err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	t.Digest = digest.NewDigest(digest.SHA256, h)

	tarSplitLength, tarSplitSize := l.split.Size()
	// The 48-byte footer is the one every footer reader accepts
	// (stargz-snapshotter knows no other); containers/storage never
	// reads a footer when the annotations are there, and the tar-split
	// follows the TOC, where readers without annotations find it.
	f := toc.Footer{
		Format:                     toc.FormatZstdChunked,
		Size:                       zstdchunked.LegacyFooterSize,
		TOCOffset:                  dataEnd + zstdchunked.SkippableFrameHeaderSize,
		TOCLength:                  compressed.N,
		TOCUncompressedLength:      tocSize,
		TarSplitOffset:             dataEnd + 2*zstdchunked.SkippableFrameHeaderSize + compressed.N,
		TarSplitLength:             tarSplitLength,
		TarSplitUncompressedLength: tarSplitSize,
	}
	footer, err := zstdchunked.Footer(f)
	if err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	frame, err := zstdchunked.AppendSkippableFrameHeader(nil, compressed.N)
	if err == nil {
		err = sink.write(frame, nil)
	}
	if err == nil {
		_, err = encode(sink.compressed())
	}
	if err == nil {
		frame, err = zstdchunked.AppendSkippableFrameHeader(nil, tarSplitLength)
	}
	if err == nil {
		err = sink.write(frame, nil)
	}
	if err == nil {
		_, err = tarSplit.WriteTo(sink.compressed())
	}
	if err == nil {
		err = sink.write(footer, nil)
	}
	if err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	return sink.finish(res, &t, x, dataEnd, zstdchunked.Annotations(t.Digest, t.TarSplitDigest, f))
}

// utc returns t in UTC, keeping the zero Time (unknown) as it is.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// errNotZeros refuses a tar with bytes other than zeros where tar readers
// skip them (padding, and after the end of the archive): readers of a
// tar-split refuse them (zstdchunked.CheckTarSplit), since a tar reader told to
// ignore zero blocks (GNU tar -i) reads on past the end.
var errNotZeros = fmt.Errorf("zstd:chunked keeps only zeros where tar readers skip bytes: %w", ErrUnsupportedEntry)
