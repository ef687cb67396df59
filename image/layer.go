package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/lazylayer/lazylayer/toc/estargz"
	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layer is one layer of an opened image.
type Layer struct {
	// Descriptor is the layer's descriptor in the manifest.
	Descriptor ocispec.Descriptor
	// Format is the seekable format the media type and annotations
	// declare, or toc.FormatUnknown for a layer that is not seekable.
	Format toc.Format
	// Whole reports a layer that was not seekable and that Open fetched
	// whole (WithFetchWhole): Layer serves it from a local copy.
	Whole bool
	// Layer is the lazily read layer, or nil if Err is set.
	Layer *reader.Layer
	// Err says why the layer could not be opened. It names the layer,
	// and matches ErrNotSeekable for a layer in no seekable format.
	Err error

	file *os.File   // the local copy of a layer fetched whole
	soci *sociLayer // what a layer the SOCI index serves keeps of it
}

// seekableFormat returns the format a layer's media type and annotations
// declare: eStargz is a gzip layer with a TOC digest annotation,
// zstd:chunked a zstd layer with a manifest checksum annotation (in
// either spelling).
func seekableFormat(c ocidoc.Compression, annotations map[string]string) toc.Format {
	has := func(key string) bool { _, ok := annotations[key]; return ok }
	switch {
	case c == ocidoc.Gzip && has(estargz.AnnotationTOCDigest):
		return toc.FormatEStargz
	case c == ocidoc.Zstd && (has(zstdchunked.AnnotationManifestChecksum) ||
		has(zstdchunked.LegacyAnnotationManifestChecksum)):
		return toc.FormatZstdChunked
	}
	return toc.FormatUnknown
}

// openLayer opens layer i of the manifest, by its format, or with the
// zTOC of the SOCI index, found.
func openLayer(ctx context.Context, src Source, i int, desc ocispec.Descriptor, cfg *config, whole chan struct{}, found sociFound) Layer {
	l := Layer{Descriptor: desc}
	fail := func(err error) Layer {
		l.Err = fmt.Errorf("image: layer %d (%s): %w", i, desc.Digest, err)
		return l
	}
	c, ok := ocidoc.LayerCompression(desc.MediaType)
	if !ok {
		return fail(fmt.Errorf("media type %q: %w", untrusted.Short(desc.MediaType), ErrUnsupportedMediaType))
	}
	l.Format = seekableFormat(c, desc.Annotations)
	if l.Format == toc.FormatUnknown {
		if found.err != nil {
			return fail(found.err)
		}
		if found.art.Ztoc != nil {
			var err error
			if l.Layer, l.soci, err = openSOCILayer(ctx, src, desc, found, cfg); err != nil {
				return fail(err)
			}
			l.Format = toc.FormatSOCI
			return l
		}
		if !cfg.whole {
			return fail(found.notSeekable(desc))
		}
		select {
		case whole <- struct{}{}:
		case <-ctx.Done():
			return fail(ctx.Err())
		}
		defer func() { <-whole }()
		l.Whole = true
		var err error
		if l.Layer, l.file, err = fetchWhole(ctx, src, desc, c, cfg); err != nil {
			return fail(err)
		}
		return l
	}
	f, err := src.Blob(ctx, desc)
	if err != nil {
		return fail(err)
	}
	if l.Layer, err = reader.Open(ctx, sized{f, desc.Size}, cfg.layerOptions(desc.Annotations)...); err != nil {
		return fail(err)
	}
	return l
}

// sized is a blob's fetcher that takes the blob's size from its
// descriptor, which the verified manifest vouches for, instead of
// asking for it with a request.
type sized struct {
	fetcher.Fetcher
	size int64
}

func (s sized) Size(context.Context) (int64, error) { return s.size, nil }

// maxWholeAtOnce bounds the layers fetched whole at once, each of which
// holds wholePiece bytes in flight and compresses its copy on every core.
const maxWholeAtOnce = 2

// wholePiece is how much of a blob fetched whole one request asks for.
const wholePiece = 8 << 20

// fetchWhole fetches the blob desc names whole, decompresses it, and
// builds a seekable eStargz copy of its tar in a temporary file, which it
// opens. The blob is verified against its digest before the copy is
// opened; nothing is served from a blob that fails.
func fetchWhole(ctx context.Context, src Source, desc ocispec.Descriptor, c ocidoc.Compression, cfg *config) (_ *reader.Layer, _ *os.File, err error) {
	if desc.Size > cfg.maxWhole {
		return nil, nil, fmt.Errorf("fetch whole: %d bytes, more than the %d-byte limit: %w", desc.Size, cfg.maxWhole, ErrLimit)
	}
	f, err := src.Blob(ctx, desc)
	if err != nil {
		return nil, nil, err
	}
	tmp, err := os.CreateTemp(cfg.wholeDir, "lazylayer-layer-*")
	if err != nil {
		return nil, nil, fmt.Errorf("fetch whole: %w", err)
	}
	defer func() {
		if err != nil {
			removeFile(tmp)
		}
	}()
	if runtime.GOOS != "windows" {
		os.Remove(tmp.Name()) // gone with the last descriptor, even if the program dies
	}

	blob := fetcher.NewSequentialReader(ctx, f, desc.Size, wholePiece)
	defer blob.Close()
	h := desc.Digest.Algorithm().Hash()
	raw := io.TeeReader(blob, h)
	tarStream, err := decompress(raw, c)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch whole: %w", err)
	}
	defer tarStream.Close()
	in := &limitedReader{r: tarStream, n: cfg.maxWhole}
	res, err := writer.Build(ctx, tmp, in, writer.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		return nil, nil, fmt.Errorf("fetch whole: indexing: %w", err)
	}
	// The digest covers every byte: what follows the tar's end inside
	// the compressed stream, and what follows that stream.
	if _, err := io.Copy(io.Discard, in); err != nil {
		return nil, nil, fmt.Errorf("fetch whole: %w", err)
	}
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return nil, nil, fmt.Errorf("fetch whole: %w", err)
	}
	if got := digest.NewDigest(desc.Digest.Algorithm(), h); got != desc.Digest {
		return nil, nil, fmt.Errorf("fetch whole: content has digest %s: %w", got, ErrDigestMismatch)
	}
	l, err := reader.Open(ctx, fetcher.FromReaderAt(tmp, res.Size), cfg.layerOptions(res.Annotations)...)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch whole: local copy: %w", err)
	}
	return l, tmp, nil
}

func removeFile(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

// decompress returns the tar stream inside r, by the layer's media type.
// A zstd frame may not demand a window over 128 MiB (zstd's --long mode).
func decompress(r io.Reader, c ocidoc.Compression) (io.ReadCloser, error) {
	switch c {
	case ocidoc.Gzip:
		return gzip.NewReader(r)
	case ocidoc.Zstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderMaxWindow(128<<20), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}

// limitedReader fails with ErrLimit once more than n bytes are read.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if l.n -= int64(n); l.n < 0 {
		return n, fmt.Errorf("tar stream of more than %d bytes: %w", -l.n, ErrLimit)
	}
	return n, err
}
