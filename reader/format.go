package reader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/lazylayer/lazylayer/toc/estargz"
	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/flate"
	"github.com/lazylayer/lazylayer/toc"
	digest "github.com/opencontainers/go-digest"
)

// A blobFormat is all the reader knows of one layer format. Open, the
// checks of an index and the frame loader dispatch through it only: a
// format the reader opens is one value of this interface and one entry in
// formats.
type blobFormat interface {
	// format is the toc.Format the index of a blob of this format has.
	format() toc.Format

	// supplied reports whether the caller gave Open this format's index
	// itself, kept apart from the blob (a zTOC, WithZtoc): Open then
	// opens the blob with it, from no tail and no footer.
	supplied(cfg config) bool

	// parseFooter decodes the format's footer at the end of tail, the
	// last bytes of a blob. A tail that ends in no footer of the format
	// is an error wrapping toc.ErrNoFooter.
	parseFooter(tail []byte) (toc.Footer, error)

	// Where the index is. annotated reads the format's layer descriptor
	// annotations: the TOC digest they pin, and where they locate the
	// index, if they do (nil if not). Without the format's annotations
	// it fails with toc.ErrMissingAnnotation.
	annotated(annotations map[string]string) (pin digest.Digest, at *toc.Footer, err error)
	// openAnnotated opens the blob from at, the index located by the
	// annotations, with no footer; ok is false when the annotations do not
	// locate all Open needs, and Open then reads the blob's tail.
	openAnnotated(ctx context.Context, f fetcher.Fetcher, size int64, at toc.Footer, cfg config) (l *Layer, ok bool, err error)
	// tailStart returns where the blob's tail starts, the first bytes Open
	// fetches, when the annotations located the index at at; hinted is
	// where it starts without.
	tailStart(size int64, at toc.Footer, hinted int64, cfg config) (int64, error)

	// open decodes the index (as it arrives: early is the tail decoded
	// speculatively as an eStargz TOC) of a blob whose footer, in tail,
	// says this format, loads what rebuilds the original tar if the
	// format has it (Layer.tarSplit), and opens the layer.
	open(ctx context.Context, f fetcher.Fetcher, size int64, tail blobRange, early *tocDecoding, footer toc.Footer, cfg config) (*Layer, error)

	// maxExpansion bounds how many bytes one compressed byte of a frame
	// can decompress to. No honest chunk is larger than its frame times
	// this, so the bound rejects indexes that would make the reader
	// allocate memory the blob cannot fill.
	maxExpansion() int64
	// decompress calls fn with a reader of the frame's decompressed
	// bytes. pool holds the layer's idle decompressors: setting one up
	// costs more than a small file.
	decompress(pool *sync.Pool, frame []byte, fn func(io.Reader) error) error
	// verify says how a frame's decompressed bytes are verified before
	// any is returned.
	verify() verifyRule
}

// A verifyRule says what vouches for the decompressed bytes of a frame.
type verifyRule int

const (
	// verifyChunks: every chunk has the digest of its decompressed bytes
	// in the index (eStargz, zstd:chunked).
	verifyChunks verifyRule = iota
	// verifySpans: the index has the digest of each span's compressed
	// bytes, and a decoder state (the 32 KiB window of a deflate
	// checkpoint) that the span resumes from. A span's bytes are
	// verified when its compressed bytes match their digest and the
	// state it resumed from matches the bytes decoded before it, or is
	// the layer's start (a zTOC over a gzip layer). Frames are spans
	// (see spanIndex), loaded by Layer.loadSpanFrame, and cached
	// compressed by span digest.
	verifySpans
)

// formats are the formats the reader opens, in the order Open looks for
// their annotations.
var formats = []blobFormat{zstdChunkedFormat{}, eStargzFormat{}, sociFormat{}}

// parseFooter recognises the format of a blob from its tail, the last
// len(tail) bytes, by trying the footer of each format. Footer layouts
// are unambiguous (each has its own magic at a fixed distance from the
// end), so the order does not matter. A tail that ends in no footer of
// any format is an error wrapping toc.ErrNoFooter and
// toc.ErrInvalidFooter; a footer that matches a format but is malformed
// yields an error wrapping toc.ErrInvalidFooter only.
func parseFooter(tail []byte) (toc.Footer, error) {
	for _, bf := range formats {
		f, err := bf.parseFooter(tail)
		if !errors.Is(err, toc.ErrNoFooter) {
			return f, err
		}
	}
	return toc.Footer{}, fmt.Errorf("last %d bytes: %w: %w", len(tail), toc.ErrNoFooter, toc.ErrInvalidFooter)
}

// formatOf returns the reader's format f, or nil.
func formatOf(f toc.Format) blobFormat {
	for _, bf := range formats {
		if bf.format() == f {
			return bf
		}
	}
	return nil
}

// eStargzFormat is eStargz: gzip members, the TOC a gzip member at the
// blob's end, before a footer.
type eStargzFormat struct{}

func (eStargzFormat) format() toc.Format { return toc.FormatEStargz }

func (eStargzFormat) supplied(config) bool { return false }

func (eStargzFormat) parseFooter(tail []byte) (toc.Footer, error) { return estargz.ParseFooter(tail) }

func (eStargzFormat) annotated(annotations map[string]string) (digest.Digest, *toc.Footer, error) {
	pin, _, err := estargz.ParseAnnotations(annotations)
	return pin, nil, err
}

func (eStargzFormat) openAnnotated(context.Context, fetcher.Fetcher, int64, toc.Footer, config) (*Layer, bool, error) {
	return nil, false, nil
}

func (eStargzFormat) tailStart(_ int64, _ toc.Footer, hinted int64, _ config) (int64, error) {
	return hinted, nil
}

func (eStargzFormat) open(ctx context.Context, f fetcher.Fetcher, size int64, tail blobRange, early *tocDecoding, footer toc.Footer, cfg config) (*Layer, error) {
	index, dataEnd, err := openEStargz(ctx, f, size, tail, early, footer, cfg)
	if err != nil {
		return nil, err
	}
	return newLayer(ctx, f, index, dataEnd, cfg)
}

// maxExpansion is deflate's: 258-byte matches from a couple of bits.
func (eStargzFormat) maxExpansion() int64 { return 1032 }

func (eStargzFormat) decompress(pool *sync.Pool, frame []byte, fn func(io.Reader) error) error {
	zr, _ := pool.Get().(*flate.Reader)
	if zr == nil {
		zr = flate.NewReader(bytes.NewReader(frame))
	} else {
		zr.Reset(bytes.NewReader(frame))
	}
	err := fn(zr)
	zr.Reset(nil) // an idle decoder holds no frame
	pool.Put(zr)
	return err
}

func (eStargzFormat) verify() verifyRule { return verifyChunks }

// zstdChunkedFormat is zstd:chunked: zstd frames, the TOC and tar-split
// in skippable frames at the blob's end, located by the footer or by the
// annotations.
type zstdChunkedFormat struct{}

func (zstdChunkedFormat) format() toc.Format { return toc.FormatZstdChunked }

func (zstdChunkedFormat) supplied(config) bool { return false }

func (zstdChunkedFormat) parseFooter(tail []byte) (toc.Footer, error) {
	return zstdchunked.ParseFooter(tail)
}

func (zstdChunkedFormat) annotated(annotations map[string]string) (digest.Digest, *toc.Footer, error) {
	pin, at, err := zstdchunked.ParseAnnotations(annotations)
	if err != nil {
		return "", nil, err
	}
	return pin, &at, nil
}

// openAnnotated opens the blob without its footer when the annotations
// locate the tar-split as well as the TOC.
func (zstdChunkedFormat) openAnnotated(ctx context.Context, f fetcher.Fetcher, size int64, at toc.Footer, cfg config) (*Layer, bool, error) {
	if at.TarSplitOffset == 0 && at.TarSplitLength == 0 {
		return nil, false, nil
	}
	l, err := openZstdChunkedLayer(ctx, f, size, blobRange{}, at, cfg)
	return l, true, err
}

func (zstdChunkedFormat) tailStart(size int64, at toc.Footer, hinted int64, cfg config) (int64, error) {
	return zstdChunkedTail(size, at, hinted, cfg)
}

func (zstdChunkedFormat) open(ctx context.Context, f fetcher.Fetcher, size int64, tail blobRange, _ *tocDecoding, footer toc.Footer, cfg config) (*Layer, error) {
	// The 48-byte footer does not say where the tar-split is: it
	// follows the TOC, and comes in the same request.
	return openZstdChunkedLayer(ctx, f, size, tail, zstdchunked.LocateTarSplit(footer, size), cfg)
}

// maxExpansion is zstd's: an RLE block turns 4 bytes into 128 KiB.
func (zstdChunkedFormat) maxExpansion() int64 { return 128 << 10 / 4 }

func (zstdChunkedFormat) decompress(pool *sync.Pool, frame []byte, fn func(io.Reader) error) error {
	zr, _ := pool.Get().(*zstd.Decoder)
	var err error
	if zr == nil {
		// One goroutine-free decoder per frame, with a window bound
		// so that a hostile frame header cannot demand huge buffers.
		zr, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return fmt.Errorf("zstd decoder: %w", err)
		}
	}
	if err := zr.Reset(bytes.NewReader(frame)); err != nil {
		zr.Close()
		return truncated(err)
	}
	err = fn(zr)
	pool.Put(zr)
	return err
}

// maxZstdWindow bounds the window a zstd:chunked data frame may declare.
// Writers use the default levels, whose windows are a few MiB.
const maxZstdWindow = 64 << 20

func (zstdChunkedFormat) verify() verifyRule { return verifyChunks }
