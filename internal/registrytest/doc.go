// Package registrytest gives tests a registry to talk to.
//
// [Start] runs Debian's docker-registry (distribution 2.8) through package
// localregistry, on a free loopback port with its storage in a temporary
// directory, optionally behind htpasswd Basic auth, and stops it when the
// test ends. Where the binary is missing it falls back to
// go-containerregistry's in-process registry, so the HTTP path is still
// covered, unless LAZYLAYER_REQUIRE_REGISTRY=1 asks for the real one (CI
// does). Blobs are pushed through the distribution API with
// [Registry.PushBlob].
//
// [NewBlobServer] starts a registry stand-in for one blob that misbehaves
// on purpose: dropped connections, truncated or corrupted bodies, 5xx and
// 429 answers, ignored ranges, wrong Content-Range, refused multi-range,
// slow trickles, redirects to another host, Basic or bearer-token auth.
// Faults come from a fixed plan or at a seeded random rate, so fetcher
// and reader tests can check that no fault ever yields wrong bytes
// without an error.
package registrytest
