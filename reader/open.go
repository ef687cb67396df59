package reader

import (
	"context"
	"fmt"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	digest "github.com/opencontainers/go-digest"
)

// Open opens the layer blob that f serves. It fetches the blob's tail,
// which holds the footer and, when the tail is large enough (see
// WithTailHint), the whole index; otherwise it fetches the index with one
// more request. With zstd:chunked annotations (WithAnnotations) the footer
// is not needed: the index comes in one request. The index is checked
// against WithTOCDigest, decoded and validated against the blob's size
// before Open returns. ctx bounds Open only; reads from the returned Layer
// run until the Layer is closed.
func Open(ctx context.Context, f fetcher.Fetcher, opts ...Option) (*Layer, error) {
	cfg := newConfig(opts)
	annotated, err := annotatedIndex(&cfg)
	if err != nil {
		return nil, err
	}
	size, err := f.Size(ctx)
	if err != nil {
		return nil, fmt.Errorf("reader: blob size: %w", err)
	}
	if size <= 0 {
		return nil, fmt.Errorf("reader: blob of %d bytes: %w", size, ErrCorrupt)
	}
	if annotated != nil {
		return openZstdChunkedLayer(ctx, f, size, blobRange{}, *annotated, cfg)
	}
	// The tail is decoded as an eStargz TOC as it arrives, in case it
	// starts with one; the footer says afterwards.
	tail, early, err := fetchDecoding(ctx, f, size-min(size, max(cfg.tailHint, toc.MaxFooterSize)), size, size-toc.MaxFooterSize, cfg)
	if err != nil {
		return nil, fmt.Errorf("reader: fetch blob tail: %w", err)
	}
	defer early.stop()
	footer, err := toc.ParseFooter(tail.data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if int64(footer.Size) > size {
		return nil, fmt.Errorf("reader: %d-byte footer in a %d-byte blob: %w", footer.Size, size, ErrCorrupt)
	}
	var index *toc.TOC
	var dataEnd int64
	switch footer.Format {
	case toc.FormatEStargz:
		index, dataEnd, err = openEStargz(ctx, f, size, tail, early, footer, cfg)
	case toc.FormatZstdChunked:
		// The 48-byte footer does not say where the tar-split is: it
		// follows the TOC, and comes in the same request.
		return openZstdChunkedLayer(ctx, f, size, tail, toc.LocateZstdChunkedTarSplit(footer, size), cfg)
	default:
		err = fmt.Errorf("reader: %v blobs: %w", footer.Format, ErrUnsupportedFormat)
	}
	if err != nil {
		return nil, err
	}
	return newLayer(ctx, f, index, dataEnd, cfg)
}

// blobRange is bytes [offset, offset+len(data)) of the blob.
type blobRange struct {
	offset int64
	data   []byte
}

// slice returns blob bytes [from, to) if r holds them.
func (r blobRange) slice(from, to int64) ([]byte, bool) {
	if from < r.offset || to > r.offset+int64(len(r.data)) || from > to {
		return nil, false
	}
	return r.data[from-r.offset : to-r.offset], true
}

// fetchRange fetches blob bytes [from, to) in one request.
func fetchRange(ctx context.Context, f fetcher.Fetcher, from, to int64) (blobRange, error) {
	want := fetcher.Range{Offset: from, Length: to - from}
	var got []byte
	err := f.Fetch(ctx, []fetcher.Range{want}, func(r fetcher.Range, data []byte) error {
		if r != want || int64(len(data)) != want.Length {
			return fmt.Errorf("fetcher returned %d bytes at %d for range %v: %w", len(data), r.Offset, want, ErrCorrupt)
		}
		got = data
		return nil
	})
	return blobRange{from, got}, err
}

// openEStargz reads and decodes an eStargz TOC: the gzip member between
// footer.TOCOffset and the footer. File data lies before the TOC.
func openEStargz(ctx context.Context, f fetcher.Fetcher, size int64, tail blobRange, early *tocDecoding, footer toc.Footer, cfg config) (*toc.TOC, int64, error) {
	if footer.ExternalTOC {
		return nil, 0, fmt.Errorf("reader: estargz with an external TOC: %w", ErrUnsupportedFormat)
	}
	tocEnd := size - int64(footer.Size)
	if footer.TOCOffset < 0 || footer.TOCOffset >= tocEnd {
		return nil, 0, fmt.Errorf("reader: TOC offset %d outside blob data [0,%d): %w", footer.TOCOffset, tocEnd, ErrCorrupt)
	}
	if memberLen := tocEnd - footer.TOCOffset; memberLen > maxCompressedTOC(cfg.maxTOCSize) {
		return nil, 0, fmt.Errorf("reader: %d-byte TOC member exceeds the %d-byte TOC limit: %w: %w",
			memberLen, cfg.maxTOCSize, ErrCorrupt, toc.ErrTOCTooLarge)
	}
	var index *toc.TOC
	var data []byte
	var err error
	if member, ok := tail.slice(footer.TOCOffset, tocEnd); !ok {
		r, d, ferr := fetchDecoding(ctx, f, footer.TOCOffset, tocEnd, tocEnd, cfg)
		if ferr != nil {
			return nil, 0, fmt.Errorf("reader: fetch TOC: %w", ferr)
		}
		index, data, err = d.finish(r.offset + int64(len(r.data)))
	} else if footer.TOCOffset == early.from {
		index, data, err = early.finish(tocEnd)
	} else {
		index, data, err = decodeEStargzMember(member, footer.TOCOffset, cfg)
	}
	// The decoder is bounded and hashes what it decodes; nothing it
	// returns is used unless the hash is the pinned one.
	if err != nil {
		// A TOC that is not the pinned one is reported as that,
		// whatever else is wrong with it.
		if data != nil {
			if derr := checkTOCDigest(cfg, data); derr != nil {
				return nil, 0, derr
			}
		}
		return nil, 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if err := checkTOCSum(cfg, data, index.Digest); err != nil {
		return nil, 0, err
	}
	return index, footer.TOCOffset, nil
}

// maxCompressedTOC is the largest compressed index that can hold at most
// limit bytes: compressors add a few bytes per block to incompressible
// data, and never more.
func maxCompressedTOC(limit int64) int64 { return limit + limit/64 + 64<<10 }

// checkTOCDigest verifies the index bytes the pinned digest covers.
func checkTOCDigest(cfg config, data []byte) error { return checkTOCSum(cfg, data, "") }

// checkTOCSum is checkTOCDigest given sum, the digest of data if already
// computed, which saves hashing data again when the algorithms agree.
func checkTOCSum(cfg config, data []byte, sum digest.Digest) error {
	want := cfg.tocDigest
	if want == "" {
		return nil
	}
	if err := want.Validate(); err != nil {
		return fmt.Errorf("reader: pinned TOC digest %q: %w", want, err)
	}
	if sum != "" && sum.Algorithm() == want.Algorithm() {
		if sum != want {
			return fmt.Errorf("reader: TOC does not match %s: %w", want, ErrTOCDigest)
		}
		return nil
	}
	v := want.Verifier()
	v.Write(data)
	if !v.Verified() {
		return fmt.Errorf("reader: TOC does not match %s: %w", want, ErrTOCDigest)
	}
	return nil
}
