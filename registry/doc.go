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
// it implements the Source and Target interfaces of package image.
package registry
