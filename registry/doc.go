// Package registry is one client for OCI distribution registries: it
// resolves references as users write them, authenticates once per
// repository, tries mirrors first, reads and writes manifests, indexes
// and blobs, and hands out range fetchers (package fetcher) that share
// its connections, tokens and what it learnt of hosts.
//
// A [Client] serves every registry; [Client.Repository] names one
// repository by a reference ("ubuntu", "ubuntu:24.04",
// "localhost:5000/app@sha256:...", "[::1]:5000/app:tag",
// "ghcr.io/org/app:tag@sha256:...": a digest wins over a tag; Docker Hub
// is the default registry, reached at registry-1.docker.io, and library/
// its default namespace). A [Repository] is an image source and target:
// it implements the Source and Target interfaces of package image, and
// adds [Repository.Referrers] and [Repository.Mount].
//
// # Requests
//
// [Repository.Resolve] costs one GET of the manifest by tag (or digest),
// whose bytes the [Repository.Manifest] call that follows gets without a
// request. Every request carries a User-Agent of "lazylayer/<version>"
// (the module version the program was built with, or "devel"), after
// what [WithUserAgent] gives. Loopback registries and those named by
// [WithInsecure] are spoken to in plain HTTP, others in HTTPS.
//
// # Authentication
//
// The first request to a repository goes out without credentials; a 401's
// challenge is answered with a bearer token from the challenge's realm
// (the docker token protocol, OAuth2 refresh tokens included) or with
// Basic auth, and the answer is kept for every later request of the
// client to that repository, blob fetchers included: one token per
// repository and scope. Credentials come from the keychain ([WithKeychain];
// default go-containerregistry's authn.DefaultKeychain: docker's
// config.json and the credential helpers it names), asked at the first
// challenge only. Credentials never go to another host than the one they
// were asked for, such as the object store a blob redirect points to.
//
// # Mirrors
//
// [WithMirrors] and [WithHostsDir] (containerd's hosts.toml:
// dir/<host>/hosts.toml, else dir/_default/hosts.toml, with server,
// [host."URL"] tables in the order they are tried, capabilities,
// skip_verify and override_path; other keys are ignored) name hosts to
// try before a registry, such as a node-local P2P mirror. Tags resolve at
// the first host with the "resolve" capability, manifests by digest and
// blobs come from the first with "pull", and the registry (or the
// hosts.toml's server) is the fallback for each request that fails,
// including the rest of a blob a mirror failed part-way through.
// Requests to a mirror carry the ns query parameter naming the registry
// ("docker.io" for Docker Hub), as containerd sends it. Pushes go to the
// registry only.
//
// # Bounds and defaults
//
// Everything a registry sends is untrusted:
//
//   - A manifest, index or referrers list is read up to
//     [DefaultMaxManifestSize] (4 MiB; [WithMaxManifestSize]): a larger
//     Content-Length or descriptor size is refused with [ErrTooLarge]
//     before any byte is read, and a body is never read past the bound.
//   - Manifests are checked against their descriptor's digest and size,
//     and against the registry's Docker-Content-Digest ([ErrDigestMismatch]).
//     Media types other than the OCI and Docker schema 2 manifests and
//     indexes fail with [ErrUnsupportedMediaType].
//   - An error response's body is read up to 16 KiB for the registry's
//     error code and message, which errors quote cut to 128 bytes (a
//     *fetcher.StatusError in the chain).
//   - Requests are tried up to [DefaultAttempts] times (5; [WithRetry])
//     on lost connections, 429 and 5xx, with jittered exponential backoff
//     from [DefaultRetryDelay] (200 ms), honouring Retry-After up to 30 s
//     and the context. Each attempt is bounded by [DefaultRequestTimeout]
//     (2 min; [WithRequestTimeout]).
//   - Blobs up to [DefaultChunkSize] (8 MiB; [WithChunkSize]) are pushed
//     with one PUT after being read into memory and checked; larger ones
//     stream in chunks of that size and are committed only if they were
//     the descriptor's bytes. A push that fails part-way stores nothing
//     under the digest. A chunk that fails is sent again from where the
//     upload session says the registry stands, and a push that gives up
//     keeps its session (at most 64 per Client) for the next PushBlob of
//     the same blob, which sends only what the registry lacks; a session
//     the registry cannot report on is started over.
//   - A hosts.toml is read up to [MaxHostsFileSize] (64 KiB) and holds up
//     to [MaxHosts] (64) hosts; a reference is at most 4096 bytes.
//   - A Repository keeps the last resolved manifest and up to 16 pushed
//     manifests (for Tag); the client keeps one authenticator per
//     repository it was asked for.
//
// Errors wrap [ErrManifestUnknown], [ErrBlobUnknown], [ErrUnauthorized],
// [ErrTooLarge], [ErrDigestMismatch], [ErrUnsupportedMediaType] and
// [ErrInvalid] for callers to branch on; the last four are the values
// package image exports under the same names.
package registry
