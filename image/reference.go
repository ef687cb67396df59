package image

import (
	"fmt"
	"io"
	"strings"

	"github.com/lazylayer/lazylayer/image/archive"
	"github.com/lazylayer/lazylayer/image/layout"
	"github.com/lazylayer/lazylayer/registry"
)

// ParseReference returns the image store ref names, in skopeo's syntax:
//
//	REF, docker://REF      an image in a registry, reached through reg
//	oci:DIR[:TAG]          an OCI image layout directory
//	docker-archive:PATH[:REF], oci-archive:PATH[:REF]
//	                       an archive written by docker save or podman save
//
// A returned Source that is an io.Closer (an archive) holds a file open
// until it is closed.
func ParseReference(ref string, reg *registry.Client) (Source, error) {
	transport, rest := splitTransport(ref)
	switch transport {
	case "oci":
		dir, tag := splitPath(rest)
		return layout.Open(dir, tag)
	case "docker-archive", "oci-archive":
		file, name := splitPath(rest)
		return archive.Open(file, name)
	}
	return repository(rest, reg)
}

// ParseTarget returns the image store ref names as a destination: a
// registry repository or an OCI layout directory (see ParseReference).
// Archives are read only.
func ParseTarget(ref string, reg *registry.Client) (Target, error) {
	src, err := ParseReference(ref, reg)
	if err != nil {
		return nil, err
	}
	dst, ok := src.(Target)
	if !ok {
		if c, ok := src.(io.Closer); ok {
			c.Close()
		}
		return nil, fmt.Errorf("image: %q: a source only", ref)
	}
	return dst, nil
}

func repository(ref string, reg *registry.Client) (*registry.Repository, error) {
	if reg == nil {
		return nil, fmt.Errorf("image: %q names a registry image, and no registry client was given", ref)
	}
	return reg.Repository(ref)
}

// splitTransport splits "oci:dir" into "oci" and "dir", and "docker://ref"
// into "docker" and "ref". A registry reference without a transport, such
// as "localhost:5000/app", has none.
func splitTransport(ref string) (transport, rest string) {
	if r, ok := strings.CutPrefix(ref, "docker://"); ok {
		return "docker", r
	}
	for _, t := range []string{"oci", "docker-archive", "oci-archive"} {
		if r, ok := strings.CutPrefix(ref, t+":"); ok {
			return t, r
		}
	}
	return "", ref
}

// splitPath splits "path:name" at its first colon, as skopeo does.
func splitPath(s string) (path, name string) {
	path, name, _ = strings.Cut(s, ":")
	return path, name
}
