package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// verifyCacheSize is the chunk cache a verification reads a layer's
// chunks through; chunks are checked as they enter it, so it need not
// hold the layer.
const verifyCacheSize = 64 << 20

// VerifyLayer fetches layer i whole, once, into a temporary file, and
// checks everything that vouches for its bytes:
//
//   - the blob against its descriptor's digest and size;
//   - the decompressed blob against the config's DiffID, which is what a
//     runtime that pulls the image whole checks;
//   - for a seekable layer, its index against the digest its annotations
//     pin, and every chunk against the index, which is what a lazy reader
//     checks; for a SOCI layer, its zTOC against the digest the SOCI
//     index pins, every span against the zTOC, and every checkpoint's
//     window against the bytes before it;
//   - for zstd:chunked, the tar its tar-split rebuilds against the DiffID,
//     which is what containers/storage writes.
//
// A mismatch yields an error matching ErrDigestMismatch, reader.ErrCorrupt,
// reader.ErrChunkDigest or reader.ErrTOCDigest, naming the layer.
func (img *Image) VerifyLayer(ctx context.Context, i int) error {
	if i < 0 || i >= len(img.layers) {
		return fmt.Errorf("image: verify: no layer %d of %d", i, len(img.layers))
	}
	l := img.layers[i]
	if err := img.verifyLayer(ctx, i, l); err != nil {
		return fmt.Errorf("image: layer %d (%s): verify: %w", i, l.Descriptor.Digest, err)
	}
	return nil
}

func (img *Image) verifyLayer(ctx context.Context, i int, l Layer) error {
	desc := l.Descriptor
	c, ok := ocidoc.LayerCompression(desc.MediaType)
	if !ok {
		return ErrUnsupportedMediaType
	}
	if err := ocidoc.CheckDigest(desc.Digest); err != nil {
		return err
	}
	diffID := img.config.RootFS.DiffIDs[i]
	f, err := img.src.Blob(ctx, desc)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(img.cfg.wholeDir, "lazylayer-verify-*")
	if err != nil {
		return err
	}
	defer removeFile(tmp)
	if runtime.GOOS != "windows" {
		os.Remove(tmp.Name())
	}

	// The blob, hashed on its way to the file.
	blob := fetcher.NewSequentialReader(ctx, f, desc.Size, wholePiece)
	h := desc.Digest.Algorithm().Hash()
	n, err := io.Copy(io.MultiWriter(tmp, h), blob)
	blob.Close()
	if err != nil {
		return err
	}
	if err := ocidoc.Compare(desc, n, digest.NewDigest(desc.Digest.Algorithm(), h)); err != nil {
		return fmt.Errorf("blob: %w", err)
	}

	// Its decompressed stream, as a runtime unpacks it.
	if err := checkDiffID(io.NewSectionReader(tmp, 0, n), c, diffID); err != nil {
		return err
	}
	if l.Format == toc.FormatUnknown {
		return nil
	}

	// Its index and chunks, as a lazy reader reads them.
	opts := append(img.cfg.layerOptions(desc.Annotations), reader.WithCache(cache.NewMemory(verifyCacheSize)))
	if l.soci != nil {
		opts = append(opts, l.soci.readerOptions(desc)...)
	}
	lazy, err := reader.Open(ctx, fetcher.FromReaderAt(tmp, n), opts...)
	if err != nil {
		return err
	}
	defer lazy.Close()
	if err := lazy.FetchAll(ctx); err != nil {
		return err
	}
	if l.Format != toc.FormatZstdChunked {
		return nil
	}
	rebuilt, err := lazy.WriteTar(ctx, io.Discard)
	if errors.Is(err, reader.ErrNoTarSplit) {
		return nil // the first zstd:chunked writers wrote none
	}
	if err != nil {
		return err
	}
	if rebuilt != diffID {
		return fmt.Errorf("the tar-split rebuilds a tar of digest %s, the config's DiffID is %s: %w", rebuilt, diffID, ErrDigestMismatch)
	}
	return nil
}

// checkDiffID decompresses r and checks its digest against diffID.
func checkDiffID(r io.Reader, c ocidoc.Compression, diffID digest.Digest) error {
	if err := ocidoc.CheckDigest(diffID); err != nil {
		return fmt.Errorf("DiffID: %w", err)
	}
	tar, err := decompress(r, c)
	if err != nil {
		return fmt.Errorf("decompressing: %w: %w", ErrDigestMismatch, err)
	}
	defer tar.Close()
	h := diffID.Algorithm().Hash()
	if _, err := io.Copy(h, tar); err != nil {
		return fmt.Errorf("decompressing: %w: %w", ErrDigestMismatch, err)
	}
	if got := digest.NewDigest(diffID.Algorithm(), h); got != diffID {
		return fmt.Errorf("decompressed blob has digest %s, the config's DiffID is %s: %w", got, diffID, ErrDigestMismatch)
	}
	return nil
}
