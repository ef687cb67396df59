// Package localregistry runs a real OCI distribution registry on the
// loopback interface for programs and tests that want the HTTP path of a
// registry without a network.
//
// [Start] runs Debian's docker-registry (distribution 2.8, installed at
// [Binary]) on a free 127.0.0.1 port with its storage in a temporary
// directory, optionally behind htpasswd Basic auth, and waits until it
// answers. Where the binary is missing, Start returns [ErrNotInstalled]
// so that callers can fall back to an in-process registry.
//
// [Client] pushes blobs to any distribution registry with the monolithic
// upload of the distribution API (POST to open an upload, PUT with the
// digest), and manifests with a PUT by tag or digest; a Registry pushes
// through one.
package localregistry
