// Package ocidoc is the one parser of untrusted OCI and Docker schema 2
// documents the SDK has: package image reads them to open an image,
// package convert to rewrite one, package registry to pull and push them,
// and packages image/layout and image/archive (through internal/ocilayout)
// to serve them. It holds:
//
//   - the media types of manifests, indexes, configs and layers, and what
//     they say (KindOf, IsConfig, LayerCompression);
//   - the checks of a descriptor before what it names is fetched
//     (CheckDescriptor: a digest of an available algorithm, a size from 0
//     to a bound), and of content against it (Verify, Compare);
//   - bounded reads of a manifest or a small blob (ReadManifest, ReadBlob,
//     ReadAll);
//   - strict parsing of manifests, indexes and configs (ParseHeader,
//     ParseIndex, ParseManifest, ParseConfig);
//   - the sentinel errors every public package re-exports, so that
//     errors.Is(err, image.ErrDigestMismatch) holds whichever package
//     produced err.
//
// Bounds are parameters: each caller documents its own limits and their
// defaults. Error messages here say what failed and quote untrusted input
// cut short; callers add where (which manifest, which layer).
package ocidoc
