package writer

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/lazylayer/lazylayer/toc/estargz"

	"github.com/lazylayer/lazylayer/internal/iox"

	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

var (
	// ErrPrioritizedNotFound reports a prioritised file that is not in the
	// input (see WithAllowMissingPrioritized).
	ErrPrioritizedNotFound = errors.New("prioritized file not found in input")
	// ErrUnsupportedEntry reports a tar entry that a layer cannot carry,
	// such as a GNU multi-volume header, or a sparse file in zstd:chunked.
	ErrUnsupportedEntry = errors.New("unsupported tar entry type")
	// ErrInvalidOption reports an option value out of range.
	ErrInvalidOption = errors.New("invalid option")
)

// Result describes a blob that Build wrote.
type Result struct {
	// Digest and Size identify the blob: they belong in the layer
	// descriptor.
	Digest digest.Digest
	Size   int64
	// MediaType is the OCI layer media type of the blob, for its
	// descriptor: ocispec.MediaTypeImageLayerGzip for eStargz and
	// ocispec.MediaTypeImageLayerZstd for zstd:chunked. Both blobs are
	// ordinary layers of that type to a runtime that does not read them
	// lazily.
	MediaType string
	// DiffID is the sha256 of the uncompressed tar stream, the blob
	// decompressed as a whole; UncompressedSize is that stream's length.
	// For zstd:chunked that stream is the input tar, byte for byte.
	DiffID           digest.Digest
	UncompressedSize int64
	// TOCDigest is the trust anchor of lazy readers, the value
	// toc.TOC.Digest holds: for eStargz the sha256 of the TOC JSON, for
	// zstd:chunked the sha256 of the compressed TOC (the manifest
	// checksum).
	TOCDigest digest.Digest
	// Annotations are the layer descriptor annotations readers of the
	// format expect: for eStargz the TOC digest and uncompressed size, for
	// zstd:chunked the manifest checksum and TOC position in both
	// spellings, and the tar-split's position and checksum (see "zstd:chunked
	// readers" in the package documentation). Both formats also get
	// toc.AnnotationIndexPosition, the range at the blob's end that holds
	// index and footer, with which a reader (reader.WithAnnotations) opens
	// the layer in one request whatever the index's size. Use them with OCI
	// media types: Docker media types drop annotations.
	Annotations map[string]string
	// MissingPrioritized lists the prioritised names, as given, that the
	// input lacked (only with WithAllowMissingPrioritized).
	MissingPrioritized []string

	toc   toc.TOC // without entries
	index *index
}

// TOC returns the index written at the end of the blob, with every
// chunk's member bounds filled in. Build keeps the entries in a compact
// form (about 50 bytes for a small file, against several hundred as
// toc.Entry values) and TOC builds the model anew on each call, so that
// the memory a layer of a million files needs is spent only by callers
// that ask for it.
func (r *Result) TOC() *toc.TOC {
	t := r.toc
	if r.index == nil {
		return &t
	}
	t.Entries = make([]*toc.Entry, 0, r.index.log.n)
	err := r.index.each(true, func(e *logEntry) error {
		t.Entries = append(t.Entries, &e.Entry)
		return nil
	})
	if err != nil {
		panic(err) // the log is the writer's own: only a bug fails to decode it
	}
	return &t
}

// Build reads a tar stream from r (plain, gzip or zstd, recognised by its
// magic bytes) and writes it to w as an eStargz blob, or a zstd:chunked
// blob with WithFormat. See the package
// documentation for the layout, and the options for what can be tuned.
//
// The output depends only on the input and the layout options: neither
// WithConcurrency nor GOMAXPROCS changes a byte. On error, w may have
// received part of a blob.
func Build(ctx context.Context, w io.Writer, r io.Reader, opts ...Option) (*Result, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	var ra io.ReaderAt // the input read in place, if it can be
	if len(cfg.prioritized) > 0 {
		ra, _ = inPlace(r)
	}
	in, release, err := decompressInput(r)
	if err != nil {
		return nil, err
	}
	defer release()

	res := new(Result)
	if err := formats[cfg.format].build(ctx, w, in, ra, cfg, res); err != nil {
		return nil, err
	}
	return res, nil
}

// build writes the eStargz blob of in, reading it again through ra, if
// not nil, to write prioritized files first.
func (eStargzFormat) build(ctx context.Context, w io.Writer, in io.Reader, ra io.ReaderAt, cfg *config, res *Result) error {
	var emit func(*assembler) error
	if len(cfg.prioritized) == 0 {
		emit = func(a *assembler) error { return streamEntries(a, in) }
	} else {
		f, entries, done, err := spool(ctx, ra, in, cfg.tempDir)
		if err != nil {
			return err
		}
		defer done()
		o := planOrder(entries, cfg.prioritized)
		if len(o.missing) > 0 && !cfg.allowMissing {
			return fmt.Errorf("writer: %q (and %d more): %w", o.missing[0], len(o.missing)-1, ErrPrioritizedNotFound)
		}
		res.MissingPrioritized = o.missing
		emit = func(a *assembler) error { return emitOrdered(a, f, entries, o) }
	}

	sink := newBlobSink(w)
	pipe, err := startPipeline(ctx, sink, cfg.concurrency, cfg.memberLimit(), func() (frameEncoder, error) {
		return newGzipEncoder(cfg.level)
	})
	if err != nil {
		return err
	}
	a, err := newAssembler(ctx, cfg, pipe)
	if err == nil {
		if err = emit(a); err == nil {
			a.finish()
		}
	}
	if perr := pipe.close(); err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	return finishBlob(cfg, sink, a, res)
}

// streamEntries writes the input in its own order after a
// .no.prefetch.landmark.
func streamEntries(a *assembler, in io.Reader) error {
	lm, err := landmark(toc.NoPrefetchLandmark)
	if err != nil {
		return err
	}
	if err := a.add(lm, true); err != nil {
		return err
	}
	er := newEntryReader(in, nil)
	for {
		rec, err := er.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if droppedName(rec.hdr.Name) {
			continue
		}
		if err := a.add(rec, false); err != nil {
			return err
		}
	}
}

// emitOrdered writes the spooled entries in the planned order, with a
// .prefetch.landmark after the prioritised ones.
func emitOrdered(a *assembler, spool io.ReaderAt, entries []spooledEntry, o order) error {
	add := func(i int) error {
		e := entries[i]
		er := newEntryReader(io.NewSectionReader(spool, e.start, e.end-e.start), nil)
		rec, err := er.next()
		if err != nil {
			return fmt.Errorf("writer: re-reading spooled entry %q: %w", e.name, err)
		}
		return a.add(rec, false)
	}
	for _, i := range o.first {
		if err := add(i); err != nil {
			return err
		}
	}
	lm, err := landmark(toc.PrefetchLandmark)
	if err != nil {
		return err
	}
	if err := a.add(lm, true); err != nil {
		return err
	}
	for _, i := range o.rest {
		if err := add(i); err != nil {
			return err
		}
	}
	return nil
}

// finishBlob writes the TOC member and the footer after the data members
// and fills in res.
func finishBlob(cfg *config, sink *blobSink, a *assembler, res *Result) error {
	tocOffset := sink.size
	x := a.index(tocOffset)
	t := toc.TOC{Format: toc.FormatEStargz, ChunkSize: cfg.chunkSize, NoPrefetch: a.noPrefetch}
	if a.prefetchMember >= 0 {
		t.PrefetchEnd, _ = x.member(a.prefetchMember)
	}
	encode := func(w io.Writer) error {
		enc := estargz.NewEncoder(w, cfg.chunkSize)
		if err := x.each(false, func(e *logEntry) error { return enc.Encode(&e.Entry) }); err != nil {
			return err
		}
		return enc.Close()
	}
	// The TOC is encoded twice rather than held (131 MB of JSON for
	// 300,000 small files): once for the size its tar header needs and
	// its digest, once into the member.
	h := sha256.New()
	json := iox.CountingWriter{W: h}
	if err := encode(&json); err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	t.Digest = digest.NewDigest(digest.SHA256, h)
	// The DiffID covers the member's uncompressed bytes, exactly what a
	// gunzip of the blob yields.
	if err := estargz.WriteTOCMemberFrom(sink.compressed(), sink.raw(), json.N, cfg.level, encode); err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	if err := sink.write(estargz.Footer(tocOffset), nil); err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	return sink.finish(res, &t, x, tocOffset, estargz.Annotations(t.Digest, sink.uncompressedSize))
}
