package reader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/toc"
	digest "github.com/opencontainers/go-digest"
)

// Open opens the layer blob that f serves. It asks f for the blob's size,
// then fetches the blob's tail, which holds the footer and, when the tail
// is large enough, the whole index; otherwise it fetches the bytes of the
// index the tail lacks with one more request. With the annotations the
// writer package makes (WithAnnotations) the tail is exactly index and
// footer; without, the last WithTailHint bytes. The index is checked
// against WithTOCDigest, decoded and validated against the blob's size
// before Open returns. ctx bounds Open only; reads from the returned Layer
// run until the Layer is closed.
func Open(ctx context.Context, f fetcher.Fetcher, opts ...Option) (*Layer, error) {
	cfg := newConfig(opts)
	annotated, located, region, err := annotatedIndex(&cfg)
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
	for _, blob := range formats {
		if blob.supplied(cfg) {
			return blob.open(ctx, f, size, blobRange{}, nil, toc.Footer{Format: blob.format()}, cfg)
		}
	}
	if located != nil {
		if l, ok, err := annotated.openAnnotated(ctx, f, size, *located, cfg); ok {
			return l, err
		}
	}
	from, err := firstFetch(size, region, annotated, located, cfg)
	if err != nil {
		return nil, err
	}
	// The tail is decoded as an eStargz TOC as it arrives, in case it
	// starts with one; the footer says afterwards.
	tail, early, err := fetchDecoding(ctx, f, blobRange{}, from, size, size-toc.MaxFooterSize, cfg)
	if err != nil {
		return nil, fmt.Errorf("reader: fetch blob tail: %w", err)
	}
	defer early.stop()
	footer, err := parseFooter(tail.data)
	if errors.Is(err, toc.ErrNoFooter) {
		kind, herr := plainLayerKind(ctx, f, tail)
		if herr != nil {
			return nil, fmt.Errorf("reader: %w (fetching the blob's head: %w)", err, herr)
		}
		if kind != "" {
			return nil, fmt.Errorf("reader: %s blob: %w: %w", kind, ErrNotSeekable, err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
	}
	if int64(footer.Size) > size {
		return nil, fmt.Errorf("reader: %d-byte footer in a %d-byte blob: %w", footer.Size, size, ErrCorrupt)
	}
	blob := formatOf(footer.Format)
	if blob == nil {
		return nil, fmt.Errorf("reader: %v blobs: %w", footer.Format, ErrUnsupportedFormat)
	}
	return blob.open(ctx, f, size, tail, early, footer, cfg)
}

// annotatedIndex reads the layer descriptor annotations given with
// WithAnnotations, of the first format in formats that has its own: it
// returns that format, where they locate the index, if they do (nil if
// not), and pins the TOC digest they give. For a zstd:chunked layer they
// give the frame positions: with a tar-split's, Open needs no footer;
// without (the annotations of a tool that knew no tar-split, or that
// dropped its key), the footer is read, from a tail that starts at the
// TOC's frame (see firstFetch).
// It also returns the range toc.AnnotationIndexPosition gives, if
// any (Length 0 if not), to be checked against the blob by firstFetch.
// Other annotations are ignored. A pin that contradicts WithTOCDigest
// fails with ErrTOCDigest.
func annotatedIndex(cfg *config) (blobFormat, *toc.Footer, fetcher.Range, error) {
	if cfg.annotations == nil {
		return nil, nil, fetcher.Range{}, nil
	}
	var region fetcher.Range
	var err error
	region.Offset, region.Length, err = toc.ParseIndexPositionAnnotations(cfg.annotations)
	if err != nil && !errors.Is(err, toc.ErrMissingAnnotation) {
		return nil, nil, fetcher.Range{}, fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
	}
	for _, blob := range formats {
		pin, located, err := blob.annotated(cfg.annotations)
		if errors.Is(err, toc.ErrMissingAnnotation) {
			continue
		}
		if err != nil {
			return nil, nil, fetcher.Range{}, fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
		}
		if cfg.tocDigest != "" && cfg.tocDigest != pin {
			return nil, nil, fetcher.Range{}, fmt.Errorf("reader: annotations pin TOC digest %s, WithTOCDigest %s: %w", pin, cfg.tocDigest, ErrTOCDigest)
		}
		cfg.tocDigest = pin
		return blob, located, region, nil
	}
	return nil, nil, region, nil
}

// firstFetch returns where the tail Open fetches first starts: at the
// start of region, the range of index and footer that the annotations
// give (toc.AnnotationIndexPosition); without one, where the annotated
// format says, given located, the index its annotations locate, if any
// (see zstdChunkedTail); otherwise WithTailHint bytes before the blob's
// end.
// The region must end at the blob's end and be no larger than an index
// Open accepts (maxIndexRegion); it is trusted for nothing else: what the
// tail holds is found from its footer.
func firstFetch(size int64, region fetcher.Range, annotated blobFormat, located *toc.Footer, cfg config) (int64, error) {
	if region.Length == 0 {
		hinted := size - min(size, max(cfg.tailHint, toc.MaxFooterSize))
		if located != nil {
			return annotated.tailStart(size, *located, hinted, cfg)
		}
		return hinted, nil
	}
	if region.End() != size {
		return 0, fmt.Errorf("reader: annotation %s: %d bytes at %d do not end at the end of the %d-byte blob: %w",
			toc.AnnotationIndexPosition, region.Length, region.Offset, size, ErrCorrupt)
	}
	if limit := maxIndexRegion(cfg); region.Length > limit {
		return 0, fmt.Errorf("reader: annotation %s: %d bytes of index and footer exceed the %d bytes a %d-byte TOC takes: %w: %w",
			toc.AnnotationIndexPosition, region.Length, limit, cfg.maxTOCSize, ErrCorrupt, toc.ErrTOCTooLarge)
	}
	return min(region.Offset, size-min(size, toc.MaxFooterSize)), nil
}

// zstdChunkedTail returns where the tail of a zstd:chunked blob of size
// bytes starts when annotations locate its TOC, f, but not its tar-split:
// at the TOC's frame, so that the one request brings the TOC, the
// tar-split that writers put behind it, and the footer, and nothing
// before them. What lies between the TOC and the footer is fetched so
// only as far as openZstdChunkedLayer fetches an unvouched tar-split
// with a TOC (maxUnvouchedTarSplit); a TOC further from the end, or one
// the blob cannot hold, gets the tail a blob without annotations gets,
// hinted. A TOC over the TOC limit fails, as its footer would. The
// positions are trusted for nothing else: the footer, the pinned digest
// and the TOC decide what the tail holds.
func zstdChunkedTail(size int64, f toc.Footer, hinted int64, cfg config) (int64, error) {
	if err := checkZstdChunkedLimits(f, cfg); err != nil {
		return 0, err
	}
	start, tocEnd := f.TOCOffset-zstdchunked.SkippableFrameHeaderSize, f.TOCOffset+f.TOCLength
	if tocEnd > size {
		return hinted, nil
	}
	// Past the TOC, at most what a tar-split fetched with it may take,
	// written so that nothing overflows: beyond > 2*f.TOCLength.
	if beyond := size - tocEnd - (zstdchunked.SkippableFrameHeaderSize + maxUnvouchedTarSplit + toc.MaxFooterSize); beyond > f.TOCLength && beyond-f.TOCLength > f.TOCLength {
		return hinted, nil
	}
	return min(start, size-min(size, toc.MaxFooterSize)), nil
}

// maxIndexRegion is the most bytes the index position annotation may ask
// Open to fetch: the largest compressed TOC WithMaxTOCSize admits, and a
// footer.
func maxIndexRegion(cfg config) int64 { return maxCompressed(cfg.maxTOCSize) + toc.MaxFooterSize }

// plainHeadSize is how many bytes at a blob's start plainLayerKind looks
// at: a tar header block, whose magic lies at offset 257.
const plainHeadSize = 512

// plainLayerKind tells, from the blob's first bytes, whether a blob
// without a footer is a plain layer: "gzip", "zstd", "tar", or "" for
// none of these. It fetches those bytes unless tail holds them.
func plainLayerKind(ctx context.Context, f fetcher.Fetcher, tail blobRange) (string, error) {
	end := min(tail.offset+int64(len(tail.data)), plainHeadSize)
	head, ok := tail.slice(0, end)
	if !ok {
		r, err := fetchRange(ctx, f, 0, end)
		if err != nil {
			return "", err
		}
		head = r.data
	}
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "gzip", nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd", nil
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return "tar", nil
	}
	return "", nil
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
	if memberLen := tocEnd - footer.TOCOffset; memberLen > maxCompressed(cfg.maxTOCSize) {
		return nil, 0, fmt.Errorf("reader: %d-byte TOC member exceeds the %d-byte TOC limit: %w: %w",
			memberLen, cfg.maxTOCSize, ErrCorrupt, toc.ErrTOCTooLarge)
	}
	var index *toc.TOC
	var data []byte
	var err error
	if member, ok := tail.slice(footer.TOCOffset, tocEnd); !ok {
		// The tail holds the member's end: fetch the bytes before it.
		r, d, ferr := fetchDecoding(ctx, f, tail, footer.TOCOffset, tocEnd, tocEnd, cfg)
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
		return nil, 0, fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
	}
	if err := checkTOCSum(cfg, data, index.Digest); err != nil {
		return nil, 0, err
	}
	return index, footer.TOCOffset, nil
}

// maxCompressed is the largest compressed stream (an index, or a frame)
// that can hold at most limit bytes: compressors add a few bytes per
// block to incompressible data, and never more.
func maxCompressed(limit int64) int64 {
	return limit + min(limit/64+64<<10, math.MaxInt64-limit)
}

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
		return fmt.Errorf("reader: pinned TOC digest %q: %w", untrusted.Short(string(want)), err)
	}
	got := sum
	if got == "" || got.Algorithm() != want.Algorithm() {
		got = want.Algorithm().FromBytes(data)
	}
	if got != want {
		return fmt.Errorf("reader: TOC: want %s, got %s: %w", want, got, ErrTOCDigest)
	}
	return nil
}
