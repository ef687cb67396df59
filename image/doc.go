// Package image opens container images lazily, whole: the reference is
// resolved to a manifest of the wanted platform and its config, and every
// layer to a lazy reader.Layer of its format, stacked into one file
// system.
//
// Images come from a Source and go to a Target, the seam every image
// store plugs in at: a registry repository (package registry), an OCI
// layout directory (package image/layout), a docker-save archive
// (package image/archive). ParseReference and ParseTarget pick the store
// a reference names, in skopeo's syntax: "ubuntu:24.04" or
// "docker://ubuntu:24.04", "oci:DIR:TAG", "docker-archive:FILE".
//
// # Opening an image
//
// Open resolves the source to a manifest or image index, follows indexes
// to the manifest of the wanted platform (WithPlatform; by default linux
// and the running architecture, with containerd's preferences for older
// variants and 32-bit modes), then fetches the config and opens every
// layer at the same time. A layer's blob size comes from its descriptor,
// and a seekable layer's annotations locate its index, so each layer
// costs one request; with a Source that answers Resolve with the root's
// bytes, as a registry's GET by tag does, the whole image is open after
// three round trips: the root, the platform's manifest, then the config
// and every layer's index together. A layer whose annotations do not
// locate its index (eStargz of other tools, annotated with the TOC digest
// only; zstd:chunked annotations locate at least the TOC) costs a tail of
// 64 KiB instead, which holds a small layer's TOC and footer, and a
// larger TOC one more request of exactly the rest; WithReaderOptions
// (reader.WithTailHint) changes the tail. OCI and Docker schema 2
// manifests, indexes and configs are read.
//
// A layer is opened by the format its media type and annotations
// declare, never by probing the blob: a gzip layer with the eStargz TOC
// digest annotation is eStargz, a zstd layer with the zstd:chunked
// manifest checksum annotation (either spelling) is zstd:chunked, and
// reader.Open is given the annotations, which pin the index's digest and
// locate it. A gzip or uncompressed tar layer in neither format that the
// image's SOCI index covers is opened with its zTOC (see below). Any
// other layer of a known media type is not seekable: its Layer entry
// holds an error matching ErrNotSeekable, and Image.FS and
// Image.Prefetch fail, unless Open fetches it whole (WithFetchWhole).
// Image.Layers tells which layer is which.
//
// # SOCI
//
// An image indexed by soci-snapshotter (or convert.WithSOCI) keeps its
// layers as they are; its SOCI index lists a zTOC for each large gzip or
// tar layer (package toc/soci). Open finds the index of the manifest it
// chose, unless WithoutSOCI says not to:
//
//   - v2: the index the manifest's com.amazon.soci.index-digest
//     annotation names, or else the one the image index binds to the
//     manifest (an entry of artifactType soci.MediaTypeIndexV2 annotated
//     with the manifest's digest). When the image index lists it, it is
//     fetched with the manifest, in the same round trip; a manifest
//     opened by digest, without its image index, has only the index's
//     digest, which registries serve but an OCI layout does not;
//   - else v1: the first referrer of the manifest of artifactType
//     soci.MediaTypeIndexV1, if the Source implements Referrers (a
//     registry.Repository does), which must have the manifest as its
//     subject. Listing referrers costs a round trip, made only for an
//     image with a layer the index could serve; if it fails, the layers
//     are as without an index and their errors say why.
//
// Open fetches the index while it fetches the config and the other
// layers, then, for each layer the index covers, its zTOC and its
// prefetch artifact, if any, at once; the zTOC's digest is checked and
// pinned (reader.WithTOCDigest), and the layer's digest given to the
// reader (reader.WithLayerDigest), which checks it whenever it has the
// whole blob, VerifyLayer included. A v2 image listed in its image index
// thus opens in three round trips too; v1 costs two more (the referrers,
// then the index), and a third where a registry has no referrers API and
// its referrers tag is asked for instead. Layers the index does
// not cover (soci skips those under 10 MiB) are as without one. Their
// Format is toc.FormatSOCI.
//
// A SOCI index that Open found but that fails (it cannot be fetched, does
// not match its digest, exceeds a bound, is malformed, or names layers
// the image lacks), or a zTOC that fails, fails each layer it may serve
// with that error, naming the layer and the index; it matches
// ErrDigestMismatch, ErrInvalid (and soci.ErrInvalidIndex) or ErrLimit
// (and soci.ErrIndexTooLarge), not ErrNotSeekable, and such a layer is
// not fetched whole in its stead: a broken index is not silently
// ignored. WithoutSOCI opens such an image as if it had none.
//
// # Layers fetched whole
//
// With WithFetchWhole, a layer that is not seekable is fetched from start
// to end, 8 MiB a request with the next request made while the previous
// piece is consumed, decompressed as its media type says, and rewritten
// as an eStargz blob (gzip level 1) into a temporary file, which is then
// opened like any seekable layer. Its digest is checked over every byte
// before the copy is opened: a layer that fails is never served. At most
// two layers are fetched whole at once; each holds up to 24 MiB of blob
// in flight plus what package writer needs to compress it. The file is
// unlinked at once where the system allows it, and removed by Close.
//
// # Bounds
//
// Manifests, indexes and configs are untrusted: each is checked against
// the digest and size of the descriptor naming it before it is parsed,
// and their descriptors' sizes are bounded before they are fetched.
// Every bound is an option, whose value <= 0 selects the default:
//
//   - WithMaxManifestSize: a manifest, index or config, 4 MiB
//     (DefaultMaxManifestSize), the limit registries apply; a Source
//     returns manifest bytes whole, so it must bound what it reads too;
//   - WithMaxIndexDepth: indexes followed before a manifest, 4
//     (DefaultMaxIndexDepth); one path is followed, never a search;
//   - WithMaxLayers: layers of a manifest, 1024 (DefaultMaxLayers);
//   - WithMaxWholeLayerSize: a layer fetched whole, blob and tar, 16 GiB
//     (DefaultMaxWholeLayerSize);
//   - WithParallelism: layers opened at once, 32 (DefaultParallelism).
//
// What a layer's index may cost is bounded by package reader, whose
// options WithReaderOptions passes on. A SOCI index is fetched within
// WithMaxManifestSize, then decoded within package soci's bounds, which
// WithSOCIOptions sets: the index's size (4 MiB), its zTOCs and prefetch
// artifacts (2048), the size of each zTOC (256 MiB) and prefetch artifact
// (1 MiB), checked before any is fetched, and the spans of a prefetch
// artifact (65536). The referrers a Source lists are bounded by what it
// reads (a registry, 4 MiB); Open fetches one of them. An error quoting untrusted input
// quotes at most 128 bytes of it; a *PlatformError lists at most 16 of
// the platforms an index offers.
//
// # Prefetch
//
// Image.Plan merges the prefetch plans the image carries: the files
// before each eStargz layer's landmark, the files in the spans of each
// SOCI prefetch artifact (as byte ranges where a span holds part of a
// file), the patterns annotation
// (prefetch.AnnotationPatterns) of the manifest and of each layer, and
// the plan prefetch.FromImageConfig makes from the config. Image.Prefetch
// fetches into the layers' caches, all layers at once, the plan the image
// carries, or the config plan if it carries none: the config analysis
// reads files of the lazy image, which a start should not wait for when
// the converter has already chosen them.
//
// # Verification
//
// Image.VerifyLayer fetches a layer once and checks it as every kind of
// puller would: the blob against its digest, the decompressed stream
// against the config's DiffID, the index against the digest its
// annotations pin and every chunk against the index, and, for
// zstd:chunked, the tar its tar-split rebuilds against the DiffID.
package image
