package reader

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/toc/soci"
	digest "github.com/opencontainers/go-digest"
)

// WithZtoc makes Open read the blob as an unmodified gzip (one member or
// several) or uncompressed tar layer, indexed by blob, its
// soci-snapshotter zTOC, instead of looking for a seekable format's
// footer. Open decodes the zTOC within toc/soci's default bounds and the
// name limits below, and checks it against the blob's size before it
// fetches anything; WithTOCDigest pins the zTOC blob's sha256. See the
// package documentation for what a read verifies. Open keeps blob.
func WithZtoc(blob []byte) Option {
	return func(c *config) { c.ztoc = blob }
}

// WithLayerDigest gives the digest of the layer blob, from its descriptor.
// A zTOC layer (WithZtoc) checks it whenever it has the whole blob:
// FetchAll (and WithBackgroundFetch) and WriteTar fail with an error
// matching ErrLayerDigest, and so ErrCorrupt, if the blob does not match.
// Other formats verify their content by their index's digests and ignore
// it.
func WithLayerDigest(d digest.Digest) Option {
	return func(c *config) { c.layerDigest = d }
}

// WithRequireLayerDigest makes Open of a zTOC layer fetch the whole blob
// (into the cache, if any) and check it against WithLayerDigest, and every
// checkpoint of the zTOC (its position and window) and every span digest
// against it, before it returns: no byte is served from a layer that
// nobody vouched for whole. Open fails with ErrLayerDigest if it does not
// match, and with ErrCorrupt if no WithLayerDigest was given. It costs a
// download of the whole layer before the first read; without it a zTOC
// layer is served lazily.
func WithRequireLayerDigest() Option {
	return func(c *config) { c.requireLayer = true }
}

// sociFormat is an unmodified gzip or uncompressed tar layer whose index,
// a zTOC, the caller hands Open (WithZtoc).
type sociFormat struct{}

func (sociFormat) format() toc.Format { return toc.FormatSOCI }

func (sociFormat) supplied(cfg config) bool { return cfg.ztoc != nil }

// parseFooter finds no footer: the zTOC is not in the blob.
func (sociFormat) parseFooter(tail []byte) (toc.Footer, error) {
	return toc.Footer{}, fmt.Errorf("zTOC layers have no footer: %w", toc.ErrNoFooter)
}

func (sociFormat) annotated(map[string]string) (digest.Digest, *toc.Footer, error) {
	return "", nil, toc.ErrMissingAnnotation
}

func (sociFormat) openAnnotated(context.Context, fetcher.Fetcher, int64, toc.Footer, config) (*Layer, bool, error) {
	return nil, false, nil
}

func (sociFormat) tailStart(_ int64, _ toc.Footer, hinted int64, _ config) (int64, error) {
	return hinted, nil
}

func (sociFormat) open(ctx context.Context, f fetcher.Fetcher, size int64, _ blobRange, _ *tocDecoding, _ toc.Footer, cfg config) (*Layer, error) {
	return openZtoc(ctx, f, size, cfg)
}

// maxExpansion is deflate's.
func (sociFormat) maxExpansion() int64 { return 1032 }

// decompress is not used: spans are decoded from their checkpoints (see
// Layer.loadSpanFrame).
func (sociFormat) decompress(*sync.Pool, []byte, func(io.Reader) error) error {
	return fmt.Errorf("zTOC spans decode from checkpoints: %w", ErrUnsupportedFormat)
}

func (sociFormat) verify() verifyRule { return verifySpans }

// openZtoc opens the layer of size bytes that f serves, indexed by the
// zTOC cfg.ztoc.
func openZtoc(ctx context.Context, f fetcher.Fetcher, size int64, cfg config) (*Layer, error) {
	sum := sha256.Sum256(cfg.ztoc)
	if err := checkTOCSum(cfg, cfg.ztoc, digest.NewDigestFromBytes(digest.SHA256, sum[:])); err != nil {
		return nil, err
	}
	if cfg.requireLayer && cfg.layerDigest == "" {
		return nil, fmt.Errorf("reader: WithRequireLayerDigest without WithLayerDigest: %w", ErrCorrupt)
	}
	z, err := soci.Decode(cfg.ztoc)
	if err != nil {
		return nil, fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
	}
	if z.CompressedArchiveSize != size {
		return nil, fmt.Errorf("reader: zTOC indexes a %d-byte layer, the blob has %d bytes: %w", z.CompressedArchiveSize, size, ErrCorrupt)
	}
	spans, err := newSpanIndex(z, size, cfg)
	if err != nil {
		return nil, err
	}
	spans.headers = newEntryHeaders(z)
	t, err := ztocEntries(z, spans)
	if err != nil {
		return nil, err
	}
	t.Digest = digest.NewDigestFromBytes(digest.SHA256, sum[:])
	l, err := newSpanLayer(ctx, f, t, size, cfg, spans)
	if err != nil {
		return nil, err
	}
	if cfg.requireLayer {
		if err := l.wholeLayer(ctx, io.Discard, nil); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// newSpanIndex checks the spans z claims against the blob's size and the
// reader's limits, before anything is fetched: every span lies in the
// blob, after the one before, and decompresses to at most the chunk limit
// (WithMaxChunkSize), which deflate can make of its compressed bytes.
func newSpanIndex(z *soci.Ztoc, size int64, cfg config) (*spanIndex, error) {
	s := &spanIndex{gzip: z.Compression == soci.Gzip, tarEnd: z.UncompressedArchiveSize}
	n := len(z.SpanDigests)
	s.spans = make([]spanInfo, n)
	if s.gzip {
		cp, err := soci.DecodeCheckpoints(z.Checkpoints)
		if err != nil {
			return nil, fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
		}
		if cp.Points[0].Bits != 0 {
			return nil, fmt.Errorf("reader: checkpoint 0 has %d bits, not at a gzip header's end: %w", cp.Points[0].Bits, ErrCorrupt)
		}
		for i, p := range cp.Points {
			sp := &s.spans[i]
			sp.in, sp.bits, sp.out, sp.window = p.In, p.Bits, p.Out, p.Window
			sp.frame.Offset, sp.frame.Length = p.CompressedStart(), size-p.CompressedStart()
			// The last span holds the rest of the tar, if any: a
			// checkpoint may fall in padding after the tar's end.
			sp.outEnd = max(z.UncompressedArchiveSize, p.Out)
			if i+1 < n {
				next := cp.Points[i+1]
				sp.frame.Length, sp.outEnd = next.In-p.CompressedStart(), next.Out
				sp.nextIn, sp.nextBits = next.In, next.Bits
			}
		}
		// Span 0's frame starts at the blob's: the gzip header it decodes
		// after is part of its state.
		s.spans[0].keyed = s.spans[0].frame.Offset
		s.spans[0].frame = fetcher.Range{Offset: 0, Length: s.spans[0].frame.End()}
		s.spans[0].window = nil
	} else {
		tz, err := soci.DecodeTarZinfo(z.Checkpoints)
		if err != nil {
			return nil, fmt.Errorf("reader: %w: %w", ErrCorrupt, err)
		}
		for i := range s.spans {
			off := int64(i) * tz.SpanSize
			s.spans[i] = spanInfo{frame: fetcher.Range{Offset: off, Length: min(tz.SpanSize, size-off)}, out: off, outEnd: min(off+tz.SpanSize, size)}
		}
		if z.UncompressedArchiveSize > size {
			return nil, fmt.Errorf("reader: zTOC's tar of %d bytes is larger than the %d-byte uncompressed layer: %w", z.UncompressedArchiveSize, size, ErrCorrupt)
		}
	}
	for i := range s.spans {
		sp := &s.spans[i]
		sp.digest = z.SpanDigests[i]
		out := sp.outEnd - sp.out
		switch {
		case sp.frame.Length <= sp.keyed || sp.frame.End() > size || i > 0 && sp.frame.Offset <= s.spans[i-1].frame.Offset:
			return nil, fmt.Errorf("reader: span %d at [%d,+%d) is empty, outside the %d-byte blob or not after span %d: %w",
				i, sp.frame.Offset, sp.frame.Length, size, i-1, ErrCorrupt)
		case out < 0:
			return nil, fmt.Errorf("reader: span %d starts at %d, past the tar's end at %d: %w", i, sp.out, sp.outEnd, ErrCorrupt)
		case out > cfg.maxChunkSize || sp.frame.Length > maxCompressed(cfg.maxChunkSize):
			return nil, fmt.Errorf("reader: span %d of %d bytes, %d compressed, exceeds the %d-byte chunk limit: %w",
				i, out, sp.frame.Length, cfg.maxChunkSize, ErrCorrupt)
		case s.gzip && sp.frame.Length < math.MaxInt64/2048 && out > sp.frame.Length*sociFormat{}.maxExpansion()+1<<10:
			return nil, fmt.Errorf("reader: span %d of %d bytes cannot come from %d compressed bytes: %w", i, out, sp.frame.Length, ErrCorrupt)
		}
	}
	s.init(cfg)
	return s, nil
}

// fileTypes maps a zTOC's file types to the model's.
var fileTypes = map[string]toc.EntryType{
	"reg": toc.TypeReg, "dir": toc.TypeDir, "symlink": toc.TypeSymlink, "hardlink": toc.TypeHardlink,
	"char": toc.TypeChar, "block": toc.TypeBlock, "fifo": toc.TypeFIFO,
}

// xattrPrefix marks the PAX records that hold extended attributes.
const xattrPrefix = "SCHILY.xattr."

// ztocEntries converts z's file table to the model: each regular file's
// content is cut into chunks at span boundaries, each chunk in the frame
// of its span.
func ztocEntries(z *soci.Ztoc, s *spanIndex) (*toc.TOC, error) {
	t := &toc.TOC{Format: toc.FormatSOCI, Entries: make([]*toc.Entry, len(z.Files))}
	for i := range z.Files {
		f := &z.Files[i]
		e := &toc.Entry{
			Name: cleanName(f.Name), Type: fileTypes[f.Type], Mode: f.Mode,
			UID: int(f.UID), GID: int(f.GID), UserName: f.Uname, GroupName: f.Gname,
			ModTime: f.ModTime.UTC(), LinkName: f.Linkname, DevMajor: f.Devmajor, DevMinor: f.Devminor,
		}
		if e.Name != f.Name {
			e.TarName = f.Name
		}
		if e.Type == toc.TypeHardlink {
			// As the other formats' decoders do: the tar's raw target is
			// compared when the whole tar is checked.
			e.LinkName = cleanName(f.Linkname)
		}
		for _, r := range f.PAXRecords {
			if name, ok := strings.CutPrefix(r.Key, xattrPrefix); ok {
				if e.Xattrs == nil {
					e.Xattrs = make(map[string]string)
				}
				e.Xattrs[name] = r.Value
			}
		}
		if e.Type == toc.TypeReg {
			e.Size = f.Size
			if err := s.cut(e, f.Offset); err != nil {
				return nil, fmt.Errorf("reader: file %q: %w", untrusted.Short(f.Name), err)
			}
		}
		t.Entries[i] = e
	}
	return t, nil
}

// cut gives e, a regular file whose content starts at off in the tar
// stream, its chunks: one per span its content meets.
func (s *spanIndex) cut(e *toc.Entry, off int64) error {
	if off < 0 || e.Size > s.tarEnd-off {
		return fmt.Errorf("content [%d,+%d) outside the %d-byte tar: %w", off, e.Size, s.tarEnd, ErrCorrupt)
	}
	k := sort.Search(len(s.spans), func(k int) bool { return s.spans[k].outEnd > off })
	for pos, end := off, off+e.Size; pos < end; k++ {
		if k == len(s.spans) || s.spans[k].out > pos {
			return fmt.Errorf("no span holds tar offset %d: %w", pos, ErrCorrupt)
		}
		sp := &s.spans[k]
		n := min(end, sp.outEnd) - pos
		e.Chunks = append(e.Chunks, toc.Chunk{
			Offset: pos - off, Size: n,
			FrameOffset: sp.frame.Offset, FrameEnd: sp.frame.End(), InnerOffset: pos - sp.out,
		})
		pos += n
	}
	return nil
}
