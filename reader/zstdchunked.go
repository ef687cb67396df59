package reader

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// annotatedIndex reads the layer descriptor annotations given with
// WithAnnotations. For a zstd:chunked layer it returns the frame positions
// they record (so Open needs no footer) and pins the manifest checksum;
// for an eStargz layer it pins the TOC digest. Other annotations are
// ignored. A pin that contradicts WithTOCDigest fails with ErrTOCDigest.
func annotatedIndex(cfg *config) (*toc.Footer, error) {
	if cfg.annotations == nil {
		return nil, nil
	}
	pin := func(d digest.Digest) error {
		if cfg.tocDigest != "" && cfg.tocDigest != d {
			return fmt.Errorf("reader: annotations pin TOC digest %s, WithTOCDigest %s: %w", d, cfg.tocDigest, ErrTOCDigest)
		}
		return nil
	}
	tocDigest, f, err := toc.ParseZstdChunkedAnnotations(cfg.annotations)
	switch {
	case err == nil:
		if err := pin(tocDigest); err != nil {
			return nil, err
		}
		cfg.tocDigest = tocDigest
		return &f, nil
	case !errors.Is(err, toc.ErrMissingAnnotation):
		return nil, fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
	}
	tocDigest, _, err = toc.ParseEStargzAnnotations(cfg.annotations)
	switch {
	case err == nil:
		if err := pin(tocDigest); err != nil {
			return nil, err
		}
		cfg.tocDigest = tocDigest
	case !errors.Is(err, toc.ErrMissingAnnotation):
		return nil, fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
	}
	return nil, nil
}

// openZstdChunkedLayer opens a zstd:chunked layer whose TOC and tar-split
// frames footer locates (from the blob's footer or from annotations, the
// latter with Size 0). Both frames come from tail when it holds them, or
// else from one fetch. The TOC is checked against the pinned digest, the
// tar-split against the digest the TOC pins, and then the two against each
// other, before either is used.
func openZstdChunkedLayer(ctx context.Context, f fetcher.Fetcher, size int64, tail blobRange, footer toc.Footer, cfg config) (*Layer, error) {
	if err := toc.CheckZstdChunkedFooter(footer, size); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if footer.TOCLength > maxCompressedTOC(cfg.maxTOCSize) {
		return nil, fmt.Errorf("reader: %d-byte compressed TOC exceeds the %d-byte TOC limit: %w: %w",
			footer.TOCLength, cfg.maxTOCSize, ErrCorrupt, toc.ErrTOCTooLarge)
	}
	hasTarSplit := footer.TarSplitLength > 0
	if hasTarSplit && footer.TarSplitLength > maxCompressedTOC(toc.DefaultMaxTarSplitSize) {
		return nil, fmt.Errorf("reader: %d-byte compressed tar-split exceeds the %d-byte limit: %w",
			footer.TarSplitLength, int64(toc.DefaultMaxTarSplitSize), ErrCorrupt)
	}
	frames, err := fetchIndexFrames(ctx, f, tail, footer)
	if err != nil {
		return nil, err
	}
	compressed, err := toc.SkippableFramePayload(frames[0].data, frames[0].offset, footer.TOCOffset, footer.TOCLength)
	if err != nil {
		return nil, fmt.Errorf("reader: TOC: %w: %w", ErrCorrupt, err)
	}
	// The pinned digest (manifest-checksum) covers the compressed TOC.
	if err := checkTOCDigest(cfg, compressed); err != nil {
		return nil, err
	}
	var tarSplit []byte
	var split <-chan parsedTarSplit
	if hasTarSplit {
		if tarSplit, err = toc.SkippableFramePayload(frames[1].data, frames[1].offset, footer.TarSplitOffset, footer.TarSplitLength); err != nil {
			return nil, fmt.Errorf("reader: tar-split: %w: %w", ErrCorrupt, err)
		}
		split = parseTarSplitAhead(tarSplit, footer.TarSplitUncompressedLength)
	}
	index, tarSplitDigest, err := toc.DecodeZstdChunked(compressed, footer, toc.WithMaxTOCSize(cfg.maxTOCSize))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	// Without a digest in the TOC the tar-split is nobody's word (the
	// first zstd:chunked writer had none): it is not used.
	if tarSplitDigest == "" {
		tarSplit = nil
	} else {
		if !hasTarSplit {
			return nil, fmt.Errorf("reader: TOC pins tar-split %s, the blob has none: %w", tarSplitDigest, ErrCorrupt)
		}
		if err := checkTarSplit(tarSplit, tarSplitDigest, split, index); err != nil {
			return nil, err
		}
		index.TarSplitDigest = tarSplitDigest
	}
	l, err := newLayer(ctx, f, index, footer.TOCOffset-toc.SkippableFrameHeaderSize, cfg)
	if err != nil {
		return nil, err
	}
	l.tarSplit = tarSplit
	return l, nil
}

// parsedTarSplit is the outcome of parsing a tar-split's headers.
type parsedTarSplit struct {
	headers *toc.TarSplitHeaders
	err     error
}

// maxSpeculativeTarSplit bounds the tar-split that Open parses before the
// TOC has vouched for it. Parsing takes as long as decoding the TOC, so
// doing both at once shortens Open; but the work is wasted if the TOC then
// pins other bytes, so a tar-split claiming more than this is parsed only
// after it is verified.
const maxSpeculativeTarSplit = 64 << 20

// parseTarSplitAhead starts parsing the headers of a tar-split that the TOC
// has not vouched for yet, if it claims to be small enough (see
// maxSpeculativeTarSplit); nothing of it is used before checkTarSplit
// verifies its digest. It returns nil if it did not start.
func parseTarSplitAhead(compressed []byte, claimed int64) <-chan parsedTarSplit {
	if claimed <= 0 || claimed > maxSpeculativeTarSplit {
		return nil
	}
	c := make(chan parsedTarSplit, 1)
	go func() { c <- parseTarSplit(compressed, "", toc.WithMaxTarSplitSize(maxSpeculativeTarSplit)) }()
	return c
}

func parseTarSplit(compressed []byte, want digest.Digest, opts ...toc.TarSplitOption) parsedTarSplit {
	r, err := toc.NewTarSplitReader(compressed, want, opts...)
	if err != nil {
		return parsedTarSplit{err: err}
	}
	defer r.Close()
	hdrs, err := toc.ReadTarSplitHeaders(r, 0)
	return parsedTarSplit{hdrs, err}
}

// checkTarSplit verifies the compressed tar-split against the digest the
// TOC pins and checks that it lists the same entries as the TOC. ahead, if
// not nil, delivers its headers parsed before the digest was known.
func checkTarSplit(compressed []byte, want digest.Digest, ahead <-chan parsedTarSplit, index *toc.TOC) error {
	if err := want.Validate(); err != nil {
		return fmt.Errorf("reader: tar-split digest %q: %w: %w: %w", want, ErrCorrupt, toc.ErrInvalidTarSplit, err)
	}
	if got := want.Algorithm().FromBytes(compressed); got != want {
		return fmt.Errorf("reader: tar-split has digest %s, TOC pins %s: %w: %w", got, want, ErrCorrupt, toc.ErrInvalidTarSplit)
	}
	var p parsedTarSplit
	if ahead != nil {
		p = <-ahead
	} else {
		p = parseTarSplit(compressed, "") // verified just above
	}
	if p.err != nil {
		return fmt.Errorf("reader: %w: %w", ErrCorrupt, p.err)
	}
	if err := p.headers.Check(index); err != nil {
		return fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
	}
	return nil
}

// fetchIndexFrames returns the blob bytes of the TOC frame and, if the blob
// has one, the tar-split frame, headers included: from tail when it holds
// them, or else with one fetch. containers/storage writes the two frames
// next to each other, so one range covers both; frames further apart are
// asked for as two ranges of the same fetch.
func fetchIndexFrames(ctx context.Context, f fetcher.Fetcher, tail blobRange, footer toc.Footer) ([]blobRange, error) {
	ranges := []fetcher.Range{{
		Offset: footer.TOCOffset - toc.SkippableFrameHeaderSize,
		Length: footer.TOCLength + toc.SkippableFrameHeaderSize,
	}}
	if footer.TarSplitLength > 0 {
		ranges = append(ranges, fetcher.Range{
			Offset: footer.TarSplitOffset - toc.SkippableFrameHeaderSize,
			Length: footer.TarSplitLength + toc.SkippableFrameHeaderSize,
		})
	}
	frames := make([]blobRange, len(ranges))
	var missing []fetcher.Range
	var from, to, wanted int64
	for i, r := range ranges {
		if data, ok := tail.slice(r.Offset, r.Offset+r.Length); ok {
			frames[i] = blobRange{r.Offset, data}
			continue
		}
		if len(missing) == 0 {
			from, to = r.Offset, r.Offset+r.Length
		}
		from, to = min(from, r.Offset), max(to, r.Offset+r.Length)
		wanted += r.Length
		missing = append(missing, r)
	}
	if len(missing) == 0 {
		return frames, nil
	}
	got := make(map[fetcher.Range][]byte, len(missing))
	if to-from-wanted <= maxIndexGap {
		all, err := fetchRange(ctx, f, from, to)
		if err != nil {
			return nil, fmt.Errorf("reader: fetch TOC and tar-split: %w", err)
		}
		for _, r := range missing {
			got[r], _ = all.slice(r.Offset, r.Offset+r.Length)
		}
	} else {
		var mu sync.Mutex // fetchers may call back concurrently
		err := f.Fetch(ctx, missing, func(r fetcher.Range, data []byte) error {
			mu.Lock()
			defer mu.Unlock()
			if _, planned := got[r]; planned || int64(len(data)) != r.Length || !slices.Contains(missing, r) {
				return fmt.Errorf("fetcher returned %d bytes at %d, not a planned range: %w", len(data), r.Offset, ErrCorrupt)
			}
			got[r] = data
			return nil
		})
		if err == nil && len(got) != len(missing) {
			err = fmt.Errorf("fetcher skipped a range: %w", ErrCorrupt)
		}
		if err != nil {
			return nil, fmt.Errorf("reader: fetch TOC and tar-split: %w", err)
		}
	}
	for i, r := range ranges {
		if data, ok := got[r]; ok {
			frames[i] = blobRange{r.Offset, data}
		}
	}
	return frames, nil
}

// maxIndexGap is how many bytes between the TOC and tar-split frames
// fetchIndexFrames fetches for nothing rather than ask for two ranges.
const maxIndexGap = 64 << 10
