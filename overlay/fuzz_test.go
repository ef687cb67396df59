package overlay

import (
	"io/fs"
	"path"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzResolve resolves arbitrary names, and arbitrary link targets, in a
// layered image: it must end, stay inside the image and name a path a
// layer has.
func FuzzResolve(f *testing.F) {
	f.Fuzz(func(t *testing.T, name, target string) {
		img := testImage()
		img.layers = append(img.layers, fstest.MapFS{"usr/bin/fuzz": link(target)})
		for _, n := range []string{name, "usr/bin/fuzz", "usr/bin/fuzz/" + name} {
			loc, err := img.Resolve(n)
			if err != nil {
				continue
			}
			if loc.Path != path.Clean(loc.Path) || strings.HasPrefix(loc.Path, "/") ||
				loc.Path == ".." || strings.HasPrefix(loc.Path, "../") {
				t.Fatalf("%q resolved to %q", n, loc.Path)
			}
			if _, err := fs.Lstat(img.layers[loc.Layer], loc.Path); err != nil {
				t.Fatalf("%q resolved to %q, which layer %d lacks: %v", n, loc.Path, loc.Layer, err)
			}
		}
	})
}
