package image

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"sync"

	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/toc/soci"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Referrers is an optional interface of a Source: it lists the manifests
// whose subject is subject, of artifactType, as the OCI referrers API
// does. registry.Repository implements it (with the referrers tag schema
// where a registry has no referrers API). Open uses it to find a v1 SOCI
// index; what it returns is untrusted, as everything a Source returns.
type Referrers interface {
	Referrers(ctx context.Context, subject ocispec.Descriptor, artifactType string) ([]ocispec.Descriptor, error)
}

// WithoutSOCI makes Open ignore SOCI indexes: a gzip or tar layer in no
// seekable format is then not seekable, as if its image had none, and
// Open makes no request to look for one.
func WithoutSOCI() Option {
	return func(c *config) { c.noSOCI = true }
}

// WithSOCIOptions passes opts, the bounds of package soci, to what Open
// decodes of a SOCI index: the index (soci.WithMaxIndexSize,
// soci.WithMaxIndexBlobs, and the sizes of the zTOCs and prefetch
// artifacts it lists, soci.WithMaxZtocSize and soci.WithMaxPrefetchSize,
// checked before any is fetched) and its prefetch artifacts
// (soci.WithMaxSpans). Package reader decodes the zTOCs themselves within
// soci's default bounds.
func WithSOCIOptions(opts ...soci.Option) Option {
	return func(c *config) { c.sociOpts = append(slices.Clip(c.sociOpts), opts...) }
}

// ReasonSOCIPrefetch is the reason of the items of a plan that a SOCI
// prefetch artifact asks for (see Image.Plan).
const ReasonSOCIPrefetch prefetch.Reason = "soci-prefetch"

// sociCandidate reports whether a SOCI index may serve a layer: a gzip
// or uncompressed tar layer in no other seekable format. soci indexes an
// eStargz layer too, as the gzip it is; its own index is used instead,
// which verifies chunks by their uncompressed digests.
func sociCandidate(desc ocispec.Descriptor) bool {
	c, ok := ocidoc.LayerCompression(desc.MediaType)
	return ok && (c == ocidoc.Gzip || c == ocidoc.Uncompressed) && seekableFormat(c, desc.Annotations) == toc.FormatUnknown
}

// sociEntry returns the entry of entries, an image index's, that a v2
// SOCI index of the manifest chosen from them has: the one of the digest
// chosen's AnnotationIndexDigest names, or else the one that
// AnnotationImageManifestDigest binds to chosen.
func sociEntry(chosen ocispec.Descriptor, entries []ocispec.Descriptor) (ocispec.Descriptor, bool) {
	if s, ok := chosen.Annotations[soci.AnnotationIndexDigest]; ok {
		return entryOf(entries, digest.Digest(s))
	}
	for _, e := range entries {
		if e.ArtifactType == soci.MediaTypeIndexV2 && e.Annotations[soci.AnnotationImageManifestDigest] == string(chosen.Digest) {
			return e, true
		}
	}
	return ocispec.Descriptor{}, false
}

// entryOf returns the image manifest entry of entries of digest d, with
// a size.
func entryOf(entries []ocispec.Descriptor, d digest.Digest) (ocispec.Descriptor, bool) {
	for _, e := range entries {
		if e.Digest == d && e.MediaType == ocispec.MediaTypeImageManifest && e.Size > 0 {
			return e, true
		}
	}
	return ocispec.Descriptor{}, false
}

// sociFetch is a SOCI index being fetched.
type sociFetch struct {
	desc ocispec.Descriptor
	done chan struct{}
	data []byte
	err  error
}

// startSOCIFetch fetches the SOCI index desc names while the caller goes
// on.
func startSOCIFetch(ctx context.Context, src Source, desc ocispec.Descriptor, cfg *config) *sociFetch {
	f := &sociFetch{desc: desc, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		f.data, f.err = fetchSOCIIndex(ctx, src, desc, cfg)
	}()
	return f
}

func (f *sociFetch) wait() ([]byte, error) {
	<-f.done
	return f.data, f.err
}

// fetchSOCIIndex fetches and verifies the SOCI index desc names, within
// the manifest bound. A desc of size 0 is one the image manifest names by
// digest alone: it is asked for with that digest, which registries
// serve, and checked against it.
func fetchSOCIIndex(ctx context.Context, src Source, desc ocispec.Descriptor, cfg *config) ([]byte, error) {
	if desc.Size > 0 {
		return ocidoc.ReadManifest(desc, cfg.maxManifestSize, func() ([]byte, error) { return src.Manifest(ctx, desc) })
	}
	if err := ocidoc.CheckDigest(desc.Digest); err != nil {
		return nil, err
	}
	b, err := src.Manifest(ctx, desc)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > cfg.maxManifestSize {
		return nil, fmt.Errorf("%d bytes, over %d: %w", len(b), cfg.maxManifestSize, ErrTooLarge)
	}
	desc.Size = int64(len(b))
	return b, ocidoc.Verify(desc, b)
}

// sociFinder finds, decodes and matches the SOCI index of an image
// manifest while Open fetches the rest; the layers it may serve wait for
// it (layer).
type sociFinder struct {
	done chan struct{}

	index ocispec.Descriptor    // the SOCI index's, if one was found
	arts  []soci.LayerArtifacts // by layer, if it was decoded
	err   error                 // the index found fails every layer it may serve
	note  error                 // looking for an index failed
	m     *ocispec.Manifest     // the image manifest
	mdesc ocispec.Descriptor    // its descriptor
	early *sociFetch            // the index the image index lists, being fetched
	peers []ocispec.Descriptor  // the image index's entries, where the manifest is one
	src   Source                // the image's
	cfg   *config               // Open's
}

// newSOCIFinder returns the finder of the SOCI index of the manifest m,
// or nil if Open is not to look for one (WithoutSOCI) or no layer of m
// may be served by one. early is the index the image index lists for m,
// being fetched, and peers the image index's entries (nil if m is the
// root).
func newSOCIFinder(src Source, mdesc ocispec.Descriptor, m *ocispec.Manifest, early *sociFetch, peers []ocispec.Descriptor, cfg *config) *sociFinder {
	if cfg.noSOCI {
		return nil
	}
	for _, l := range m.Layers {
		if sociCandidate(l) {
			return &sociFinder{done: make(chan struct{}), m: m, mdesc: mdesc, early: early, peers: peers, src: src, cfg: cfg}
		}
	}
	return nil
}

// run finds the index: v2, by the digest the manifest's
// AnnotationIndexDigest names, or else the one the image index binds to
// the manifest; or else v1, the first of the manifest's referrers of
// artifact type soci.MediaTypeIndexV1, if the source lists referrers.
func (f *sociFinder) run(ctx context.Context) {
	defer close(f.done)
	data, err := f.fetch(ctx)
	if err != nil {
		f.err = fmt.Errorf("SOCI index %s: %w", shortDigest(f.index), err)
		return
	}
	if data == nil {
		return
	}
	f.arts, f.err = f.decode(data)
	if f.err != nil {
		f.err = fmt.Errorf("SOCI index %s: %w", f.index.Digest, f.err)
	}
}

// fetch locates and fetches the index, setting f.index; nil bytes if
// there is none.
func (f *sociFinder) fetch(ctx context.Context) ([]byte, error) {
	if s, ok := f.m.Annotations[soci.AnnotationIndexDigest]; ok {
		d := digest.Digest(s)
		f.index = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d}
		if err := ocidoc.CheckDigest(d); err != nil {
			return nil, fmt.Errorf("manifest %s: annotation %s: %w", f.mdesc.Digest, soci.AnnotationIndexDigest, err)
		}
		if f.early != nil && f.early.desc.Digest == d {
			f.index = f.early.desc
			return f.early.wait()
		}
		if e, ok := entryOf(f.peers, d); ok {
			f.index = e
		}
		return fetchSOCIIndex(ctx, f.src, f.index, f.cfg)
	}
	if f.early != nil {
		f.index = f.early.desc
		return f.early.wait()
	}
	r, ok := f.src.(Referrers)
	if !ok {
		return nil, nil
	}
	refs, err := r.Referrers(ctx, f.mdesc, soci.MediaTypeIndexV1)
	if err != nil {
		f.note = fmt.Errorf("listing the referrers of manifest %s: %w", f.mdesc.Digest, err)
		return nil, nil
	}
	for _, d := range refs {
		if d.ArtifactType == soci.MediaTypeIndexV1 {
			f.index = d
			return fetchSOCIIndex(ctx, f.src, d, f.cfg)
		}
	}
	return nil, nil
}

// decode decodes the index within WithSOCIOptions' bounds and matches it
// against the manifest's layers. A v1 index must have the manifest as its
// subject.
func (f *sociFinder) decode(data []byte) ([]soci.LayerArtifacts, error) {
	idx, err := soci.DecodeIndexManifest(data, f.cfg.sociOpts...)
	if err != nil {
		return nil, sociErr(err)
	}
	if idx.Version == soci.IndexV1 && idx.Subject.Digest != f.mdesc.Digest {
		return nil, fmt.Errorf("v1 index of manifest %s, not of %s: %w: %w", idx.Subject.Digest, f.mdesc.Digest, ErrInvalid, soci.ErrInvalidIndex)
	}
	arts, err := idx.Match(f.m.Layers)
	if err != nil {
		return nil, sociErr(err)
	}
	return arts, nil
}

// sociErr makes an error of package soci match image's sentinels too:
// ErrLimit for what exceeds a bound, ErrInvalid for the rest.
func sociErr(err error) error {
	if errors.Is(err, soci.ErrIndexTooLarge) || errors.Is(err, soci.ErrTooLarge) {
		return fmt.Errorf("%w: %w", ErrLimit, err)
	}
	return fmt.Errorf("%w: %w", ErrInvalid, err)
}

// sociFound is what the SOCI index holds for one layer.
type sociFound struct {
	index ocispec.Descriptor // the SOCI index, if any
	art   soci.LayerArtifacts
	err   error // the index failed: the layer fails with it
	note  error // looking for an index failed
}

// layer waits for the finder, if layer i is one a SOCI index may serve,
// and returns what the index holds for it.
func (f *sociFinder) layer(ctx context.Context, i int) sociFound {
	if f == nil || !sociCandidate(f.m.Layers[i]) {
		return sociFound{}
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return sociFound{err: ctx.Err()}
	}
	found := sociFound{index: f.index, err: f.err, note: f.note}
	if f.arts != nil {
		found.art = f.arts[i]
	}
	return found
}

// notSeekable returns the error of a layer that is not seekable, saying
// why a SOCI index did not serve it.
func (s sociFound) notSeekable(desc ocispec.Descriptor) error {
	err := fmt.Errorf("media type %q without a seekable format's annotations", untrusted.Short(desc.MediaType))
	switch {
	case s.note != nil:
		return fmt.Errorf("%w, and no SOCI index: %w: %w", err, s.note, ErrNotSeekable)
	case s.index.Digest != "":
		return fmt.Errorf("%w, and no zTOC in SOCI index %s: %w", err, s.index.Digest, ErrNotSeekable)
	}
	return fmt.Errorf("%w: %w", err, ErrNotSeekable)
}

// sociLayer is what a layer the SOCI index serves keeps of it.
type sociLayer struct {
	index       ocispec.Descriptor // the SOCI index's
	ztoc        ocispec.Descriptor // the zTOC's
	blob        []byte             // the zTOC
	prefetch    []soci.PrefetchSpan
	prefetchErr error // the prefetch artifact failed
}

// readerOptions returns the options that open the layer desc with its
// zTOC: the zTOC pinned to its digest, and the layer's digest, which the
// reader checks whenever it has fetched the whole blob.
func (s *sociLayer) readerOptions(desc ocispec.Descriptor) []reader.Option {
	return []reader.Option{reader.WithZtoc(s.blob), reader.WithTOCDigest(s.ztoc.Digest), reader.WithLayerDigest(desc.Digest)}
}

// openSOCILayer fetches the zTOC (and the prefetch artifact, if any) of
// layer desc that found names, at once, and opens the layer with them.
// The zTOC's size was bounded when the index was decoded
// (WithSOCIOptions, soci.WithMaxZtocSize) and its digest is checked
// after; a prefetch
// artifact that fails does not fail the layer, but Plan.
func openSOCILayer(ctx context.Context, src Source, desc ocispec.Descriptor, found sociFound, cfg *config) (*reader.Layer, *sociLayer, error) {
	s := &sociLayer{index: found.index, ztoc: found.art.Ztoc.Descriptor}
	var wg sync.WaitGroup
	if p := found.art.Prefetch; p != nil {
		wg.Go(func() {
			s.prefetch, s.prefetchErr = fetchPrefetch(ctx, src, p.Descriptor, cfg)
			if s.prefetchErr != nil {
				s.prefetchErr = fmt.Errorf("SOCI index %s: prefetch artifact %s: %w", found.index.Digest, p.Descriptor.Digest, s.prefetchErr)
			}
		})
	}
	blob, err := fetchSmallBlob(ctx, src, s.ztoc)
	wg.Wait()
	if err != nil {
		return nil, nil, fmt.Errorf("SOCI index %s: zTOC %s: %w", found.index.Digest, s.ztoc.Digest, err)
	}
	s.blob = blob
	f, err := src.Blob(ctx, desc)
	if err != nil {
		return nil, nil, err
	}
	l, err := reader.Open(ctx, sized{f, desc.Size}, append(cfg.layerOptions(desc.Annotations), s.readerOptions(desc)...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("SOCI index %s: zTOC %s: %w", found.index.Digest, s.ztoc.Digest, err)
	}
	return l, s, nil
}

// fetchSmallBlob fetches a zTOC or prefetch artifact of the SOCI index,
// in one request, and verifies it. Its size was bounded when the index
// was decoded (soci.WithMaxZtocSize, soci.WithMaxPrefetchSize).
func fetchSmallBlob(ctx context.Context, src Source, desc ocispec.Descriptor) ([]byte, error) {
	f, err := src.Blob(ctx, desc)
	if err != nil {
		return nil, err
	}
	return ocidoc.ReadBlob(ctx, f, desc, desc.Size)
}

// fetchPrefetch fetches, verifies and decodes a prefetch artifact.
func fetchPrefetch(ctx context.Context, src Source, desc ocispec.Descriptor, cfg *config) ([]soci.PrefetchSpan, error) {
	b, err := fetchSmallBlob(ctx, src, desc)
	if err != nil {
		return nil, err
	}
	spans, err := soci.DecodePrefetch(b, cfg.sociOpts...)
	if err != nil {
		return nil, sociErr(err)
	}
	return spans, nil
}

// plan returns the plan of the layer's prefetch artifact, layer layer of
// the image: the bytes of the files its spans hold, each file's range in
// the span ranges' order. The zTOC is decoded again for its file table
// and span starts, within WithSOCIOptions' bounds.
func (s *sociLayer) plan(layer int, opts []soci.Option) (*prefetch.Plan, error) {
	var p prefetch.Plan
	if s.prefetchErr != nil || len(s.prefetch) == 0 {
		return &p, s.prefetchErr
	}
	fail := func(err error) (*prefetch.Plan, error) {
		return &p, fmt.Errorf("SOCI index %s: zTOC %s: prefetch: %w", s.index.Digest, s.ztoc.Digest, err)
	}
	z, err := soci.Decode(s.blob, opts...)
	if err != nil {
		return fail(sociErr(err))
	}
	starts, err := z.SpanStarts(opts...)
	if err != nil {
		return fail(sociErr(err))
	}
	files := z.Files
	for _, r := range s.prefetch {
		if int(r.End) >= len(starts) {
			return fail(fmt.Errorf("%w: %w: spans %d to %d of %d", ErrInvalid, soci.ErrInvalidIndex, r.Start, r.End, len(starts)))
		}
		lo, hi := starts[r.Start], z.UncompressedArchiveSize
		if int(r.End)+1 < len(starts) {
			hi = starts[r.End+1]
		}
		first := sort.Search(len(files), func(k int) bool { return files[k].Offset+files[k].Size > lo })
		for k := first; k < len(files) && files[k].Offset < hi; k++ {
			f := &files[k]
			if f.Type != "reg" || f.Size == 0 {
				continue
			}
			it := prefetch.Item{Layer: layer, Path: cleanPath(f.Name), Priority: p.Len(), Reason: ReasonSOCIPrefetch}
			if from, to := max(lo, f.Offset), min(hi, f.Offset+f.Size); from > f.Offset || to < f.Offset+f.Size {
				it.Offset, it.Length = from-f.Offset, to-from
			}
			p.Add(it)
		}
	}
	return &p, nil
}

// cleanPath is a tar entry's name as the reader names it in a layer.
func cleanPath(name string) string {
	if c := path.Clean("/" + name); c != "/" {
		return c[1:]
	}
	return "."
}
