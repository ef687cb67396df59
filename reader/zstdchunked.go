package reader

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// openZstdChunkedLayer opens a zstd:chunked layer whose TOC and tar-split
// frames footer locates (from the blob's footer or from annotations, the
// latter with Size 0). What footer claims is bounded before any of it is
// fetched. Frames the tail does not hold are fetched with one fetch; the
// tar-split comes along only if its claimed size is plausible for the
// TOC's (see maxUnvouchedTarSplit), and otherwise once the verified TOC
// bounds it. The TOC is decoded as its bytes arrive and checked against
// the pinned digest; then the tar-split is checked against the TOC as its
// bytes arrive, and against the digest the TOC pins; only then is either
// used.
func openZstdChunkedLayer(ctx context.Context, f fetcher.Fetcher, size int64, tail blobRange, footer toc.Footer, cfg config) (*Layer, error) {
	if err := zstdchunked.CheckFooter(footer, size); err != nil {
		return nil, fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
	}
	if err := checkZstdChunkedLimits(footer, cfg); err != nil {
		return nil, err
	}
	hasTarSplit := footer.TarSplitLength > 0
	withTOC := hasTarSplit && footer.TarSplitLength <= 2*footer.TOCLength+maxUnvouchedTarSplit
	a := indexArrival(tail, footer, withTOC)
	defer a.stop()
	opened := make(chan openedZstdTOC, 1)
	go func() { opened <- openZstdTOC(ctx, f, a, footer, withTOC, cfg) }()
	if err := a.fetch(ctx, f); err != nil {
		a.stop()
		o := <-opened
		return nil, closeOnError(o.layer, fmt.Errorf("reader: fetch TOC and tar-split: %w", err))
	}
	o := <-opened
	if o.undecodable {
		// A TOC that is not the pinned one is reported as that, whatever
		// else is wrong with it.
		compressed, _ := a.slice(footer.TOCOffset, footer.TOCOffset+footer.TOCLength)
		if err := checkTOCDigest(cfg, compressed); err != nil {
			return nil, err
		}
	}
	if o.err != nil {
		return nil, closeOnError(o.layer, o.err)
	}
	l := o.layer
	// Without a digest in the TOC the tar-split is nobody's word (the
	// first zstd:chunked writer had none): it is not used.
	if o.tarSplitDigest == "" {
		return l, nil
	}
	if !hasTarSplit {
		return nil, closeOnError(l, fmt.Errorf("reader: TOC pins tar-split %s, the blob has none: %w", o.tarSplitDigest, ErrCorrupt))
	}
	frameStart, end := footer.TarSplitOffset-zstdchunked.SkippableFrameHeaderSize, footer.TarSplitOffset+footer.TarSplitLength
	frame, ok := a.slice(frameStart, end)
	if !ok {
		if frame, ok = tail.slice(frameStart, end); !ok {
			if err := zstdchunked.CheckTarSplitPosition(footer, o.index); err != nil {
				return nil, closeOnError(l, fmt.Errorf("reader: %w: %w", ErrCorrupt, err))
			}
			r, err := fetchRange(ctx, f, frameStart, end)
			if err != nil {
				return nil, closeOnError(l, fmt.Errorf("reader: fetch tar-split: %w", err))
			}
			frame = r.data
		}
	}
	tarSplit, err := zstdchunked.SkippableFramePayload(frame, frameStart, footer.TarSplitOffset, footer.TarSplitLength)
	if err != nil {
		return nil, closeOnError(l, fmt.Errorf("reader: tar-split: %w: %w", ErrCorrupt, err))
	}
	if !withTOC {
		if err := checkTarSplit(bytes.NewReader(tarSplit), o.tarSplitDigest, footer, o.index, cfg); err != nil {
			return nil, closeOnError(l, err)
		}
	}
	l.tarSplit = tarSplit
	return l, nil
}

// checkZstdChunkedLimits checks the TOC and tar-split a footer or
// annotations locate against the limits of cfg, before either is fetched.
func checkZstdChunkedLimits(footer toc.Footer, cfg config) error {
	if footer.TOCLength > maxCompressed(cfg.maxTOCSize) || footer.TOCUncompressedLength > cfg.maxTOCSize {
		return fmt.Errorf("reader: TOC of %d bytes (%d compressed) exceeds the %d-byte TOC limit: %w: %w",
			footer.TOCUncompressedLength, footer.TOCLength, cfg.maxTOCSize, ErrCorrupt, toc.ErrTOCTooLarge)
	}
	if footer.TarSplitLength > maxCompressed(cfg.maxTarSplit) || footer.TarSplitUncompressedLength > cfg.maxTarSplit {
		return fmt.Errorf("reader: tar-split of %d bytes (%d compressed) exceeds the %d-byte limit: %w: %w",
			footer.TarSplitUncompressedLength, footer.TarSplitLength, cfg.maxTarSplit, ErrCorrupt, zstdchunked.ErrTarSplitTooLarge)
	}
	return nil
}

// maxUnvouchedTarSplit is how many bytes more than twice the compressed
// TOC a compressed tar-split may claim and still be fetched with the TOC,
// before the TOC has vouched for its size: a tar-split is about the TOC's
// size (0.77 times it for containers/storage's layer of the Go toolchain,
// 0.9 times for 300,000 small files, 1.2 times for long names), a few KiB
// for a small layer. A larger claim is checked against the verified TOC
// first (zstdchunked.CheckTarSplitPosition), at the cost of a second request; so
// what a footer can make Open fetch for nothing is bounded by three times
// the TOC limit.
const maxUnvouchedTarSplit = 1 << 20

// closeOnError closes l, if not nil, and returns err.
func closeOnError(l *Layer, err error) error {
	if l != nil {
		l.Close()
	}
	return err
}

// openedZstdTOC is the TOC half of opening a zstd:chunked layer.
type openedZstdTOC struct {
	layer          *Layer   // the view of the verified TOC
	index          *toc.TOC // the TOC, until the tar-split is checked
	tarSplitDigest digest.Digest
	err            error
	undecodable    bool // err is the decoder's, about bytes not yet checked against the pin
}

// openZstdTOC decodes the TOC from a as it arrives, checks its frame and
// the pinned digest, and builds the layer's view of it; then, if a brings
// the tar-split too (withTarSplit), it checks the tar-split against the
// TOC as it arrives. So all this is done while the bytes are still
// arriving. The layer is not handed out before the tar-split is checked.
func openZstdTOC(ctx context.Context, f fetcher.Fetcher, a *arrival, footer toc.Footer, withTarSplit bool, cfg config) openedZstdTOC {
	frameStart, tocEnd := footer.TOCOffset-zstdchunked.SkippableFrameHeaderSize, footer.TOCOffset+footer.TOCLength
	index, tarSplitDigest, err := zstdchunked.DecodeFrom(a.reader(footer.TOCOffset, tocEnd, true), footer, cfg.decodeOptions()...)
	if err != nil {
		return openedZstdTOC{err: fmt.Errorf("reader: %w: %w", ErrCorrupt, err), undecodable: true}
	}
	// The decoder read the whole payload; the frame header may still be
	// on its way.
	var header [zstdchunked.SkippableFrameHeaderSize]byte
	if _, err := io.ReadFull(a.reader(frameStart, footer.TOCOffset, true), header[:]); err != nil {
		return openedZstdTOC{err: fmt.Errorf("reader: TOC frame header: %w", err)}
	}
	frame, _ := a.slice(frameStart, tocEnd)
	compressed, err := zstdchunked.SkippableFramePayload(frame, frameStart, footer.TOCOffset, footer.TOCLength)
	if err != nil {
		return openedZstdTOC{err: fmt.Errorf("reader: TOC: %w: %w", ErrCorrupt, err)}
	}
	// The pinned digest (manifest-checksum) covers the compressed TOC.
	if err := checkTOCSum(cfg, compressed, index.Digest); err != nil {
		return openedZstdTOC{err: err}
	}
	index.TarSplitDigest = tarSplitDigest
	l, err := newLayer(ctx, f, index, frameStart, cfg)
	if err == nil && withTarSplit && tarSplitDigest != "" {
		err = checkTarSplit(a.reader(footer.TarSplitOffset, footer.TarSplitOffset+footer.TarSplitLength, true), tarSplitDigest, footer, index, cfg)
	}
	return openedZstdTOC{layer: l, index: index, tarSplitDigest: tarSplitDigest, err: err}
}

// checkTarSplit checks the compressed tar-split r delivers, which footer
// locates, against index, the verified TOC that pins it with digest want:
// its claimed size first (zstdchunked.CheckTarSplitPosition), then its records,
// as they arrive (zstdchunked.CheckTarSplit), in bounded memory. The digest covers
// every byte r delivers; a tar-split that is not the pinned one is
// reported as that, whatever else is wrong with it.
func checkTarSplit(r io.Reader, want digest.Digest, footer toc.Footer, index *toc.TOC, cfg config) error {
	if err := want.Validate(); err != nil {
		return fmt.Errorf("reader: tar-split digest %q: %w: %w: %w", untrusted.Short(string(want)), ErrCorrupt, zstdchunked.ErrInvalidTarSplit, err)
	}
	if err := zstdchunked.CheckTarSplitPosition(footer, index); err != nil {
		return fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
	}
	limit := cfg.maxTarSplit
	if footer.TarSplitUncompressedLength > 0 {
		limit = min(limit, footer.TarSplitUncompressedLength)
	}
	h := want.Algorithm().Hash()
	tee := io.TeeReader(r, h)
	tr, err := zstdchunked.NewTarSplitReaderFrom(tee, zstdchunked.WithMaxTarSplitSize(limit))
	if err == nil {
		_, err = zstdchunked.CheckTarSplit(tr, index)
		tr.Close()
	}
	if _, rerr := io.Copy(io.Discard, tee); rerr != nil {
		return fmt.Errorf("reader: read tar-split: %w", rerr)
	}
	if got := digest.NewDigest(want.Algorithm(), h); got != want {
		return fmt.Errorf("reader: tar-split has digest %s, TOC pins %s: %w: %w", got, want, ErrCorrupt, zstdchunked.ErrInvalidTarSplit)
	}
	if err != nil {
		return fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
	}
	return nil
}

// indexArrival returns the arrival of the TOC frame and, if withTarSplit,
// the tar-split frame, headers included: from tail when it holds them,
// the rest to be fetched. containers/storage writes the two frames next
// to each other, so one span covers both; frames further apart are two
// spans of the same fetch.
func indexArrival(tail blobRange, footer toc.Footer, withTarSplit bool) *arrival {
	spans := []fetcher.Range{{
		Offset: footer.TOCOffset - zstdchunked.SkippableFrameHeaderSize,
		Length: footer.TOCLength + zstdchunked.SkippableFrameHeaderSize,
	}}
	if withTarSplit {
		ts := fetcher.Range{
			Offset: footer.TarSplitOffset - zstdchunked.SkippableFrameHeaderSize,
			Length: footer.TarSplitLength + zstdchunked.SkippableFrameHeaderSize,
		}
		from, to := min(spans[0].Offset, ts.Offset), max(spans[0].End(), ts.End())
		if to-from-spans[0].Length-ts.Length <= maxIndexGap {
			spans[0] = fetcher.Range{Offset: from, Length: to - from}
		} else {
			spans = append(spans, ts)
		}
	}
	return newArrival(tail, spans...)
}

// maxIndexGap is how many bytes between the TOC and tar-split frames
// indexArrival fetches for nothing rather than ask for two ranges.
const maxIndexGap = 64 << 10
