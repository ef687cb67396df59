// Package convert rewrites a whole image into seekable layers: image in
// (an image.Source), image out (an image.Target).
//
// Image resolves the source's root. An image index has every manifest
// converted (or those of WithPlatforms) and is written anew; nested
// indexes too. BuildKit's attestation manifests, which attest the
// source image and not the converted one, are left out. A manifest has
// every layer converted to eStargz (the default) or zstd:chunked
// (WithFormat) by writer.Build, its config rewritten with the new
// layers' DiffIDs (every other field kept as it came, history
// included: the layers are the same in number and content), and is
// written as an OCI manifest whose layer descriptors carry what
// writer.Result gives: the OCI media type (tar+gzip for eStargz,
// tar+zstd for zstd:chunked) and the format's annotations. Every blob
// is written before the manifest that refers to it, every manifest
// before its index, and the root is tagged last: an error leaves the
// target with blobs but nothing tagged.
//
// Converted images run on runtimes that do not read lazily: the media
// types are the standard ones, an eStargz blob gunzips and a
// zstd:chunked blob unzstds to a tar whose digest is the config's
// DiffID.
//
// # Prioritised files
//
// Each image's layers put the files a container reads at start first,
// behind an eStargz landmark, so that a lazy reader fetches them in one
// range. Which files comes from a plan of package prefetch over the
// image's layers stacked (package overlay):
//
//   - WithPrefetchFromConfig (the default): prefetch.FromImageConfig
//     follows the config's entrypoint to its interpreters, loader,
//     libraries and runtime files;
//   - WithPrefetchTrace: a recorded run (prefetch.ParseTrace,
//     prefetch.ParseStrace), as prefetch.FromTrace plans it;
//   - WithPrefetchPatterns: prefetch.FromPatterns;
//   - WithoutPrefetch: none.
//
// Each plan item names a layer and a path; each layer gets its own
// items, in plan order. The plan's patterns (prefetch.Plan.Patterns
// within prefetch.DefaultPatternBudget) are written on the manifest as
// the prefetch.AnnotationPatterns annotation, so that a consumer
// prefetches the same set. zstd:chunked blobs keep their tar's order,
// so they get the annotation but no reordering. Planning is a hint: what
// a planner cannot follow (a missing library) is left out, and only the
// context's end stops the conversion.
//
// Planners read file contents (ELF headers, #! lines), so with a plan
// each layer is first streamed from the source into a temporary file
// holding its uncompressed tar, indexed in memory as a read-only fs.FS;
// the layer is then built from that file, read in place. Without a plan
// layers stream from source to writer without a temporary tar. Either
// way the converted blob goes to a temporary file (WithTempDir) until
// its digest is known, and is then pushed from it: no layer is held in
// memory. The temporary tars of one manifest's layers exist together
// while it is planned.
//
// # Layers already converted
//
// Every converted layer carries the AnnotationOptions annotation: the
// format, level, chunk size and the digest of its prioritised files. A
// source layer of the requested media type whose annotation equals what
// this conversion would write is kept as it is (copied if the target
// lacks it), so converting a converted image again with the same
// options changes nothing.
//
// # SOCI
//
// WithSOCI indexes the layers instead of rewriting them, as soci-snapshotter's
// "soci convert" does, so that a SOCI puller (or package image) reads them
// lazily as they are. Each gzip or uncompressed layer of at least
// SOCIMinLayerSize (DefaultSOCIMinLayerSize, 10 MiB, soci's) is read once from
// the source, through soci.Index, with no temporary file: its zTOC (of
// SOCISpanSize, 4 MiB by default) is pushed, and the layer blob too if the
// target lacks it, from the same read. zstd layers are not indexed (SOCI does
// not read them): Progress.Note says so, as it says which layers were too
// small. Each manifest gets a v2 SOCI index (package toc/soci): the zTOCs in
// layer order, then a prefetch artifact per indexed layer that holds files of
// the prefetch plan (the spans that hold their bytes, as soci maps its
// prefetch files), with the build tool (SOCIBuildTool) annotated. The
// manifest is written anew as an OCI manifest with the same config and
// layers, annotated with its SOCI index's digest (and the plan's patterns),
// and the image index lists it with its annotation, then the SOCI indexes,
// each of artifactType soci.MediaTypeIndexV2 with the manifest's digest and
// platform. A single manifest becomes an index of it and its SOCI index, its
// platform taken from the config. SOCI indexes of the source are left out.
// An image of which no layer is indexed fails with ErrNothingToIndex. The
// planners' temporary tars are made from the same read as the zTOC; without
// a plan (WithoutPrefetch) nothing goes to a temporary file. The layers'
// DiffIDs are checked when a plan reads them, and their digests always.
//
// # Memory and parallelism
//
// Layers are read and built in parallel, at most WithParallelism
// (DefaultParallelism, 4) at once, within WithMemoryBudget
// (DefaultMemoryBudget, 512 MiB). Half the budget is for the buffers of
// layers in flight, as the Go heap, collected at GOGC=100, grows to
// about twice what is live: each layer takes its share before it starts
// and gives it back when done. A layer being read holds three ranges
// of 4 MiB and its decompressor (plus up to 128 MiB of window for a
// zstd source); a layer being built holds, per compression worker, about
// six chunks (WithChunkSize) and its encoder (1 MiB for gzip, 20 MiB for
// zstd, 64 MiB at zstd levels of 10 and above). A layer gets as many
// workers as there are cores and the budget allows. Measured peaks are
// in the README. What the writer keeps per file (some 25 bytes and 32
// per chunk, see package writer) and what planning keeps per file
// (below) come on top.
//
// # Bounds
//
// Everything a source returns is untrusted. Each bound is checked
// before what it bounds is fetched or allocated, is set by the option
// named, with a value <= 0 selecting the default:
//
//   - a manifest, index or config: WithMaxManifestSize, 4 MiB
//     (DefaultMaxManifestSize); ErrTooLarge. Its size and digest must be
//     its descriptor's; ErrMismatch;
//   - indexes nested in indexes: WithMaxDepth, 4 (DefaultMaxDepth);
//     ErrLimit. An index that holds itself is ErrCycle (a verified
//     digest makes it impossible; the walk checks all the same);
//   - manifests and indexes of one image, all levels: WithMaxManifests,
//     256 (DefaultMaxManifests); ErrLimit;
//   - layers of one manifest: WithMaxLayers, 256 (DefaultMaxLayers);
//     ErrLimit;
//   - a layer blob, and its uncompressed tar, each: WithMaxLayerSize,
//     64 GiB (DefaultMaxLayerSize); ErrTooLarge. The blob's digest is
//     checked as it is read, and the tar's against the config's DiffID;
//     ErrMismatch. A layer's bytes must be what its media type says
//     (gzip, zstd, or an uncompressed tar); ErrMismatch;
//   - tar entries that planning indexes, all layers of one manifest
//     together: WithMaxFiles, 2 Mi (DefaultMaxFiles), and bytes of their
//     names, WithMaxNameBytes, 128 MiB (DefaultMaxNameBytes);
//     ErrTooLarge. An entry costs some 56 bytes and its name.
//
// Media types other than OCI and Docker schema 2 manifests, indexes,
// configs and tar layers (uncompressed, gzip, zstd) are ErrUnsupported;
// a manifest or index whose own media type contradicts its descriptor's
// is ErrMismatch (and ErrInvalid); one that does not parse, or a config
// whose rootfs is not an object or whose DiffIDs do not number its
// manifest's layers, is ErrInvalid. Errors about a layer
// are a *LayerError, which names it by index and digest; the message of
// every error names the manifests and indexes above it.
package convert
