// Package e2e tests lazylayer's zstd:chunked output with the tools people
// run, as Debian 12 ships them, end to end over a registry on loopback:
//
//   - podman 4.3 (package podman) pulls our images partially from
//     docker-registry (package docker-registry): ranged requests only, and
//     nothing but the TOC for a layer whose files its store already has;
//   - stargz-snapshotter's ctr-remote 0.12 (package stargz-snapshotter),
//     over a containerd of the test's own (package containerd), parses the
//     footer and TOC of our blobs;
//   - skopeo 1.9 (package skopeo) copies our images between registries and
//     into an OCI layout with manifests, annotations and blobs unchanged,
//     and our reader opens the copied layer from the copied annotations.
//
// Images that lazylayer convert (the command, built by the test) makes
// from a multi-layer image of every kind of entry, as eStargz and as
// zstd:chunked, are pulled by podman (whole into a vfs store, and
// partially into an overlay store) and by containerd's ctr, and the root
// file systems they unpack equal the source's; lazylayer verify passes on
// them and exits with status 3 on a damaged copy.
//
// The other way round, images these tools write open lazily through
// image.Open, and "lazylayer verify", "ls" and "cat" (the command, built
// by the test) pass on them: a gzip image converted by "skopeo copy
// --dest-compress-format zstd:chunked", by "podman push
// --compression-format zstd:chunked", and by "ctr-remote image convert
// --oci" to eStargz and to zstd:chunked. Opening fetches index bytes only,
// and the merged file system holds exactly the source's files.
//
// Each tool also gets the blob as our writer wrote it before it served
// every reader, which it could not use, so that the tests show what each
// one needs.
//
// A test whose tool is missing skips, naming the Debian package to
// install, unless LAZYLAYER_REQUIRE_TOOLS=1 (set by .ci/run): then it
// fails. A missing docker-registry fails the same way under
// LAZYLAYER_REQUIRE_REGISTRY=1. The tools run as root in a mount namespace
// of their own, with /run, /var/lib and TMPDIR bound to the test's
// temporary directories, so they leave nothing behind: no cache, no run
// state, no mount. The package holds tests only.
package e2e
