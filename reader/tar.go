package reader

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// ErrNoTarSplit reports a layer that cannot rebuild its original tar
// stream: it is not zstd:chunked, or its index pins no tar-split (the
// first zstd:chunked writers wrote none).
var ErrNoTarSplit = errors.New("layer has no tar-split")

// tarBatchBytes bounds the compressed frames WriteTar fetches in one
// request, and so the memory it holds at once.
const tarBatchBytes = 16 << 20

// WriteTar writes the layer's original tar stream to w, byte for byte, and
// returns its digest: the layer's DiffID. Headers, padding and the end of
// the archive come from the tar-split that Open checked against the index;
// file contents are read like any other read (cache first, every chunk
// verified), in tar order, many files' frames per request. Memory is
// bounded by one batch of frames, whatever the layer's size. Layers
// without a tar-split fail with ErrNoTarSplit.
func (l *Layer) WriteTar(ctx context.Context, w io.Writer) (digest.Digest, error) {
	if l.blob.verify() == verifySpans {
		// The layer blob is the original tar, compressed or not.
		h := sha256.New()
		if err := l.wholeLayer(ctx, io.MultiWriter(w, h), nil); err != nil {
			return "", fmt.Errorf("reader: write tar: %w", l.closedErr(err))
		}
		return digest.NewDigest(digest.SHA256, h), nil
	}
	if l.tarSplit == nil {
		return "", fmt.Errorf("reader: %v layer: %w", l.format(), ErrNoTarSplit)
	}
	r, err := zstdchunked.NewTarSplitReader(l.tarSplit, l.idx.meta.TarSplitDigest, zstdchunked.WithMaxTarSplitSize(l.cfg.maxTarSplit))
	if err != nil {
		return "", fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
	}
	defer r.Close()
	h := sha256.New()
	contents := newTarContents(ctx, l)
	if _, err := zstdchunked.WriteTarFromTarSplit(io.MultiWriter(w, h), r, contents.open); err != nil {
		if l.ctx.Err() != nil {
			err = l.closedErr(err)
		}
		return "", fmt.Errorf("reader: write tar: %w", err)
	}
	return digest.NewDigest(digest.SHA256, h), nil
}

// tarContents serves file contents in the order the tar lists them, which
// Open checked is the index's order: each batch fetches the frames of the
// next files in one request.
type tarContents struct {
	ctx   context.Context
	layer *Layer
	files []int32 // records of regular files with content, in index order
	next  int     // files[next] is the file expected next
	// batch serves the frames of files[:batchEnd].
	batch    *frameBatch
	batchEnd int
}

func newTarContents(ctx context.Context, l *Layer) *tarContents {
	c := &tarContents{ctx: ctx, layer: l}
	for id, rec := range l.idx.recs {
		if rec.typ == toc.TypeReg && rec.size > 0 {
			c.files = append(c.files, int32(id))
		}
	}
	return c
}

// open returns the contents of the named file, which must have size bytes
// and be the next file with contents in the index: Open checked that the
// tar-split lists the index's entries in order, so a file in another
// place is a tar-split other than the one checked.
func (c *tarContents) open(name string, size int64) (io.ReadCloser, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, err
	}
	if c.next == len(c.files) {
		return nil, fmt.Errorf("not the index's next %d-byte file: %w", size, ErrCorrupt)
	}
	id := c.files[c.next]
	if rec := &c.layer.idx.recs[id]; rec.name != name || rec.size != size {
		return nil, fmt.Errorf("not the index's next %d-byte file: %w", size, ErrCorrupt)
	}
	if c.next >= c.batchEnd {
		c.planBatch()
	}
	c.next++
	return &chunkReader{ctx: c.ctx, layer: c.layer, entry: c.layer.entry(id), id: id, src: c.batch.get}, nil
}

// planBatch plans one fetch of the frames of the files from c.next on, up
// to tarBatchBytes of them (at least one file's). Zeros chunks need no
// frame. The fetch starts at the first chunk the cache lacks, so a batch
// whose chunks are all cached costs nothing.
func (c *tarContents) planBatch() {
	var frames []fetcher.Range
	var bytes int64
	end := c.next
	for ; end < len(c.files); end++ {
		var fileFrames []fetcher.Range
		var fileBytes int64
		for i := range int32(c.layer.idx.recs[c.files[end]].nchunk) {
			ch := c.layer.idx.chunkRecord(chunkRef{c.files[end], i})
			if ch.zeros {
				continue
			}
			fileFrames = append(fileFrames, fetcher.Range{Offset: ch.frameOffset, Length: ch.frameEnd - ch.frameOffset})
			fileBytes += ch.frameEnd - ch.frameOffset
		}
		if end > c.next && bytes+fileBytes > tarBatchBytes {
			break
		}
		frames = append(frames, fileFrames...)
		bytes += fileBytes
	}
	c.batch, c.batchEnd = c.layer.newFrameBatch(c.ctx, frames), end
}

// chunkReader reads one file's content chunk by chunk.
type chunkReader struct {
	ctx   context.Context
	layer *Layer
	entry *toc.Entry
	id    int32 // entry's record
	src   frameSource
	next  int    // next chunk to load
	buf   []byte // unread bytes of the loaded chunk
	sum   fileSum
	// zeros is how many bytes of a chunk of zeros remain to be served
	// from zeroPage, starting at file offset zerosAt.
	zeros, zerosAt int64
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.zeros > 0 {
			page := zeroPage[:min(r.zeros, int64(len(zeroPage)))]
			if err := r.sum.add(r.layer, r.entry, page, r.zerosAt); err != nil {
				return 0, err
			}
			r.buf = page
			r.zeros -= int64(len(page))
			r.zerosAt += int64(len(page))
			break
		}
		if r.next == len(r.entry.Chunks) {
			return 0, io.EOF
		}
		c := &r.entry.Chunks[r.next]
		if c.Zeros {
			if err := r.layer.zeroChunk(r.ctx, r.entry, r.next); err != nil {
				return 0, err
			}
			r.zeros, r.zerosAt = c.Size, c.Offset
			r.next++
			continue
		}
		data, _, err := r.layer.chunkData(r.ctx, chunkRef{r.id, int32(r.next)}, r.src)
		if err == nil {
			err = r.sum.add(r.layer, r.entry, data, c.Offset)
		}
		if err != nil {
			return 0, err
		}
		r.buf = data
		r.next++
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *chunkReader) Close() error { return nil }
