package soci

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"slices"

	"github.com/lazylayer/lazylayer/internal/flate"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
)

// Index makes the zTOC of a layer, gzip or uncompressed as c says, in one
// pass over r with no temporary file. It gives the zTOC soci-snapshotter
// makes of the same layer with the same span size and build tool
// identifier (see WithSpanSize and WithBuildToolIdentifier), with times
// in UTC, as soci makes them where the local zone is UTC:
//
//   - a gzip layer gets a checkpoint after the first member's header and
//     then at the first end of a block (not a member's last) more than the
//     span size of uncompressed bytes after the checkpoint before, as
//     zlib's inflate(Z_BLOCK) finds them; multi-member gzip continues
//     across members;
//   - an uncompressed layer gets spans of the span size;
//   - each span's digest is the sha256 of its compressed bytes;
//   - the file table lists every tar entry as archive/tar reads it.
//
// It keeps in memory the zTOC it makes: 32 KiB per checkpoint and the
// file table. It returns errors wrapping ErrInvalidLayer for a layer it
// cannot index, and ErrTooLarge for one over a limit (WithMaxLayerSize,
// WithMaxFiles, WithMaxStringBytes, WithMaxSpans).
func Index(ctx context.Context, r io.Reader, c Compression, opts ...Option) (*Ztoc, error) {
	cfg := newConfig(opts)
	ix := &indexer{c: cfg, ctx: ctx, src: r}
	var z *Ztoc
	var err error
	switch c {
	case Gzip:
		z, err = ix.gzip()
	case Uncompressed:
		z, err = ix.tar()
	default:
		return nil, fmt.Errorf("soci: index layer: unknown compression %d", c)
	}
	if err != nil {
		return nil, fmt.Errorf("soci: index layer: %w", err)
	}
	return z, nil
}

type indexer struct {
	c    config
	ctx  context.Context
	src  io.Reader
	read int64 // bytes read from src

	spans    []digest.Digest
	span     hash.Hash // of the current span's compressed bytes, if one started
	spanFill int64     // bytes in span, for fixed-size spans
}

// Read reads the layer, within its size limit and the context.
func (ix *indexer) Read(p []byte) (int, error) {
	if err := ix.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := ix.src.Read(p)
	ix.read += int64(n)
	if ix.read > ix.c.maxLayerSize {
		return n, fmt.Errorf("%w: layer exceeds the limit of %d bytes", ErrTooLarge, ix.c.maxLayerSize)
	}
	return n, err
}

// endSpan records the digest of the current span and starts the next.
func (ix *indexer) endSpan() error {
	if len(ix.spans) == ix.c.maxSpans {
		return fmt.Errorf("%w: more than %d spans", ErrTooLarge, ix.c.maxSpans)
	}
	ix.spans = append(ix.spans, digest.NewDigest(digest.SHA256, ix.span))
	ix.span.Reset()
	ix.spanFill = 0
	return nil
}

func (ix *indexer) gzip() (*Ztoc, error) {
	cp := &Checkpoints{SpanSize: ix.c.spanSize}
	zr := flate.NewReader(ix)
	zr.OnInput = func(p []byte) {
		if ix.span != nil { // bytes before checkpoint 0 are in no span
			ix.span.Write(p)
		}
	}
	zr.OnBoundary = func(b *flate.Boundary) error {
		if b.Out != 0 && len(cp.Points) > 0 && b.Out-cp.Points[len(cp.Points)-1].Out <= ix.c.spanSize {
			return nil
		}
		if ix.span == nil {
			ix.span = sha256.New()
		} else {
			if b.Bits != 0 { // byte In-1 ends this span and starts the next
				ix.span.Write([]byte{b.Partial})
			}
			if err := ix.endSpan(); err != nil {
				return err
			}
		}
		cp.Points = append(cp.Points, Checkpoint{In: b.In, Out: b.Out, Bits: b.Bits, Window: slices.Clone(b.Window)})
		return nil
	}
	z, err := ix.files(zr)
	if err != nil {
		return nil, err
	}
	if ix.span == nil {
		return nil, fmt.Errorf("%w: no gzip member", ErrInvalidLayer)
	}
	if err := ix.endSpan(); err != nil {
		return nil, err
	}
	z.Compression = Gzip
	z.Checkpoints = cp.Encode()
	return ix.finish(z), nil
}

// tar indexes an uncompressed layer: spans of the span size.
func (ix *indexer) tar() (*Ztoc, error) {
	ix.span = sha256.New()
	z, err := ix.files(io.TeeReader(ix, writerFunc(ix.hashFixed)))
	if err != nil {
		return nil, err
	}
	if ix.spanFill > 0 {
		if err := ix.endSpan(); err != nil {
			return nil, err
		}
	}
	z.Compression = Uncompressed
	z.Checkpoints = TarZinfo{Version: tarZinfoVersion, SpanSize: ix.c.spanSize, Size: ix.read}.Encode()
	return ix.finish(z), nil
}

// hashFixed hashes layer bytes into spans of the span size.
func (ix *indexer) hashFixed(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(int64(len(p)), ix.c.spanSize-ix.spanFill)
		ix.span.Write(p[:k])
		ix.spanFill += k
		p = p[k:]
		if ix.spanFill == ix.c.spanSize {
			if err := ix.endSpan(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (ix *indexer) finish(z *Ztoc) *Ztoc {
	z.Version = Version
	z.BuildToolIdentifier = ix.c.buildTool
	z.CompressedArchiveSize = ix.read
	z.SpanDigests = ix.spans
	z.MaxSpanID = int32(len(ix.spans) - 1)
	return z
}

// tarTypes maps the tar entry types soci indexes to its names.
var tarTypes = map[byte]string{
	tar.TypeReg: "reg", tar.TypeLink: "hardlink", tar.TypeSymlink: "symlink", tar.TypeDir: "dir",
	tar.TypeChar: "char", tar.TypeBlock: "block", tar.TypeFifo: "fifo",
}

// files reads the tar stream r to its end, and then the rest of r, and
// returns the zTOC's file table and tar size.
func (ix *indexer) files(r io.Reader) (*Ztoc, error) {
	pos := &counter{r: r, limit: ix.c.maxLayerSize}
	tr := tar.NewReader(pos)
	z := new(Ztoc)
	var stringBytes int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, ix.layerErr("read tar header", err)
		}
		typ, ok := tarTypes[h.Typeflag]
		if !ok {
			return nil, fmt.Errorf("%w: tar entry %q has type %q, which soci does not index", ErrInvalidLayer, untrusted.Short(h.Name), h.Typeflag)
		}
		if len(z.Files) == ix.c.maxFiles {
			return nil, fmt.Errorf("%w: more than %d files", ErrTooLarge, ix.c.maxFiles)
		}
		f := File{
			Name: h.Name, Type: typ, Offset: pos.n, Size: h.Size, Linkname: h.Linkname,
			Mode: h.Mode, UID: uint32(h.Uid), GID: uint32(h.Gid), Uname: h.Uname, Gname: h.Gname,
			ModTime: h.ModTime.UTC(), Devmajor: h.Devmajor, Devminor: h.Devminor,
		}
		stringBytes += int64(len(f.Name) + len(f.Linkname) + len(f.Uname) + len(f.Gname))
		for _, k := range slices.Sorted(maps.Keys(h.PAXRecords)) {
			f.PAXRecords = append(f.PAXRecords, PAXRecord{k, h.PAXRecords[k]})
			stringBytes += int64(len(k) + len(h.PAXRecords[k]))
		}
		if stringBytes > ix.c.maxStringBytes {
			return nil, fmt.Errorf("%w: names and PAX records exceed the limit of %d bytes", ErrTooLarge, ix.c.maxStringBytes)
		}
		z.Files = append(z.Files, f)
	}
	z.UncompressedArchiveSize = pos.n
	// The checkpoints and spans cover the whole layer.
	if _, err := io.Copy(io.Discard, pos); err != nil {
		return nil, ix.layerErr("read layer", err)
	}
	return z, nil
}

// layerErr wraps an error reading the layer: what the layer's bytes
// caused wraps ErrInvalidLayer.
func (ix *indexer) layerErr(what string, err error) error {
	if errors.Is(err, ErrTooLarge) || ix.ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if errors.Is(err, flate.ErrCorrupt) || errors.Is(err, tar.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrInsecurePath) {
		return fmt.Errorf("%w: %s: %w", ErrInvalidLayer, what, untrusted.Err(err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// A counter counts the bytes read through it, up to a limit.
type counter struct {
	r     io.Reader
	n     int64
	limit int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		return n, fmt.Errorf("%w: layer decompresses to more than %d bytes", ErrTooLarge, c.limit)
	}
	return n, err
}
