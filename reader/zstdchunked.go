package reader

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// openZstdChunkedLayer opens a zstd:chunked layer whose TOC and tar-split
// frames footer locates (from the blob's footer or from annotations, the
// latter with Size 0). Frames the tail does not hold are fetched with one
// fetch. The TOC is decoded and the tar-split parsed as their bytes
// arrive; the TOC is checked against the pinned digest, the tar-split
// against the digest the TOC pins, and then the two against each other,
// before either is used.
func openZstdChunkedLayer(ctx context.Context, f fetcher.Fetcher, size int64, tail blobRange, footer toc.Footer, cfg config) (*Layer, error) {
	if err := toc.CheckZstdChunkedFooter(footer, size); err != nil {
		return nil, fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
	}
	if footer.TOCLength > maxCompressed(cfg.maxTOCSize) {
		return nil, fmt.Errorf("reader: %d-byte compressed TOC exceeds the %d-byte TOC limit: %w: %w",
			footer.TOCLength, cfg.maxTOCSize, ErrCorrupt, toc.ErrTOCTooLarge)
	}
	hasTarSplit := footer.TarSplitLength > 0
	if hasTarSplit && footer.TarSplitLength > maxCompressed(toc.DefaultMaxTarSplitSize) {
		return nil, fmt.Errorf("reader: %d-byte compressed tar-split exceeds the %d-byte limit: %w",
			footer.TarSplitLength, int64(toc.DefaultMaxTarSplitSize), ErrCorrupt)
	}
	a := indexArrival(tail, footer)
	defer a.stop()
	opened := make(chan openedZstdTOC, 1)
	go func() { opened <- openZstdTOC(ctx, f, a, footer, cfg) }()
	var split <-chan parsedTarSplit
	if hasTarSplit {
		split = parseTarSplitAhead(a.reader(footer.TarSplitOffset, footer.TarSplitOffset+footer.TarSplitLength, true), footer.TarSplitUncompressedLength)
	}
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
		return nil, o.err
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
	frame, _ := a.slice(footer.TarSplitOffset-toc.SkippableFrameHeaderSize, footer.TarSplitOffset+footer.TarSplitLength)
	tarSplit, err := toc.SkippableFramePayload(frame, footer.TarSplitOffset-toc.SkippableFrameHeaderSize, footer.TarSplitOffset, footer.TarSplitLength)
	if err != nil {
		return nil, closeOnError(l, fmt.Errorf("reader: tar-split: %w: %w", ErrCorrupt, err))
	}
	if err := checkTarSplit(tarSplit, o.tarSplitDigest, split, l.toc); err != nil {
		return nil, closeOnError(l, err)
	}
	l.tarSplit = tarSplit
	return l, nil
}

// closeOnError closes l, if not nil, and returns err.
func closeOnError(l *Layer, err error) error {
	if l != nil {
		l.Close()
	}
	return err
}

// openedZstdTOC is the TOC half of opening a zstd:chunked layer.
type openedZstdTOC struct {
	layer          *Layer // the view of the verified TOC
	tarSplitDigest digest.Digest
	err            error
	undecodable    bool // err is the decoder's, about bytes not yet checked against the pin
}

// openZstdTOC decodes the TOC from a as it arrives, checks its frame and
// the pinned digest, and builds the layer's view of it, so that all this
// is done while the tar-split is still arriving. The layer is not handed
// out before the tar-split is checked too.
func openZstdTOC(ctx context.Context, f fetcher.Fetcher, a *arrival, footer toc.Footer, cfg config) openedZstdTOC {
	frameStart, tocEnd := footer.TOCOffset-toc.SkippableFrameHeaderSize, footer.TOCOffset+footer.TOCLength
	index, tarSplitDigest, err := toc.DecodeZstdChunkedFrom(a.reader(footer.TOCOffset, tocEnd, true), footer, cfg.decodeOptions()...)
	if err != nil {
		return openedZstdTOC{err: fmt.Errorf("reader: %w: %w", ErrCorrupt, err), undecodable: true}
	}
	// The decoder read the whole payload; the frame header may still be
	// on its way.
	var header [toc.SkippableFrameHeaderSize]byte
	if _, err := io.ReadFull(a.reader(frameStart, footer.TOCOffset, true), header[:]); err != nil {
		return openedZstdTOC{err: fmt.Errorf("reader: TOC frame header: %w", err)}
	}
	frame, _ := a.slice(frameStart, tocEnd)
	compressed, err := toc.SkippableFramePayload(frame, frameStart, footer.TOCOffset, footer.TOCLength)
	if err != nil {
		return openedZstdTOC{err: fmt.Errorf("reader: TOC: %w: %w", ErrCorrupt, err)}
	}
	// The pinned digest (manifest-checksum) covers the compressed TOC.
	if err := checkTOCSum(cfg, compressed, index.Digest); err != nil {
		return openedZstdTOC{err: err}
	}
	index.TarSplitDigest = tarSplitDigest
	l, err := newLayer(ctx, f, index, frameStart, cfg)
	return openedZstdTOC{layer: l, tarSplitDigest: tarSplitDigest, err: err}
}

// parsedTarSplit is the outcome of parsing a tar-split's headers: the
// headers and the digest of the compressed bytes they came from.
type parsedTarSplit struct {
	headers *toc.TarSplitHeaders
	sum     digest.Digest
	err     error
}

// maxSpeculativeTarSplit bounds the tar-split that Open parses before the
// TOC has vouched for it. Parsing takes as long as decoding the TOC, so
// doing both at once, as the bytes arrive, shortens Open; but the work is
// wasted if the TOC then pins other bytes, so a tar-split claiming more
// than this is parsed only after it is verified.
const maxSpeculativeTarSplit = 64 << 20

// parseTarSplitAhead starts parsing the headers of a compressed tar-split
// that the TOC has not vouched for yet, as r delivers it, if it claims to
// be small enough (see maxSpeculativeTarSplit); nothing of it is used
// before checkTarSplit compares the digest of what r delivered with the
// one the TOC pins. It returns nil if it did not start.
func parseTarSplitAhead(r io.Reader, claimed int64) <-chan parsedTarSplit {
	if claimed <= 0 || claimed > maxSpeculativeTarSplit {
		return nil
	}
	c := make(chan parsedTarSplit, 1)
	go func() {
		h := digest.Canonical.Digester()
		tee := io.TeeReader(r, h.Hash())
		p := parseTarSplit(tee, toc.WithMaxTarSplitSize(maxSpeculativeTarSplit))
		// The digest covers every byte, including any the parse left.
		if _, err := io.Copy(io.Discard, tee); err != nil && p.err == nil {
			p.err = err
		}
		p.sum = h.Digest()
		c <- p
	}()
	return c
}

func parseTarSplit(r io.Reader, opts ...toc.TarSplitOption) parsedTarSplit {
	tr, err := toc.NewTarSplitReaderFrom(r, opts...)
	if err != nil {
		return parsedTarSplit{err: err}
	}
	defer tr.Close()
	hdrs, err := toc.ReadTarSplitHeaders(tr, 0)
	return parsedTarSplit{headers: hdrs, err: err}
}

// checkTarSplit verifies the compressed tar-split against the digest the
// TOC pins and checks that it lists the same entries as the TOC. ahead, if
// not nil, delivers its headers parsed before the digest was known.
func checkTarSplit(compressed []byte, want digest.Digest, ahead <-chan parsedTarSplit, index *toc.TOC) error {
	if err := want.Validate(); err != nil {
		return fmt.Errorf("reader: tar-split digest %q: %w: %w: %w", want, ErrCorrupt, toc.ErrInvalidTarSplit, err)
	}
	var p parsedTarSplit
	if ahead != nil {
		p = <-ahead
	}
	if p.sum != want {
		if got := want.Algorithm().FromBytes(compressed); got != want {
			return fmt.Errorf("reader: tar-split has digest %s, TOC pins %s: %w: %w", got, want, ErrCorrupt, toc.ErrInvalidTarSplit)
		}
	}
	if ahead == nil {
		p = parseTarSplit(bytes.NewReader(compressed)) // verified just above
	}
	if p.err != nil {
		return fmt.Errorf("reader: %w: %w", ErrCorrupt, p.err)
	}
	if err := p.headers.Check(index); err != nil {
		return fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
	}
	return nil
}

// indexArrival returns the arrival of the TOC frame and, if the blob has
// one, the tar-split frame, headers included, from tail as far as it holds
// them, the rest to be fetched. containers/storage writes the two frames
// next to each other, so one span covers both; frames further apart are
// two spans of the same fetch.
func indexArrival(tail blobRange, footer toc.Footer) *arrival {
	spans := []fetcher.Range{{
		Offset: footer.TOCOffset - toc.SkippableFrameHeaderSize,
		Length: footer.TOCLength + toc.SkippableFrameHeaderSize,
	}}
	if footer.TarSplitLength > 0 {
		ts := fetcher.Range{
			Offset: footer.TarSplitOffset - toc.SkippableFrameHeaderSize,
			Length: footer.TarSplitLength + toc.SkippableFrameHeaderSize,
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
