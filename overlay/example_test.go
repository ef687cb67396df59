package overlay_test

import (
	"fmt"
	"io/fs"
	"testing/fstest"

	"github.com/lazylayer/lazylayer/overlay"
)

// Two layers: a base with a time zone and a password file, and an
// application layer that deletes the password file and adds a program.
func Example() {
	base := fstest.MapFS{
		"etc/passwd":             {Data: []byte("root:x:0:0::/root:/bin/sh\n")},
		"etc/localtime":          {Data: []byte("/usr/share/zoneinfo/UTC"), Mode: fs.ModeSymlink | 0o777},
		"usr/share/zoneinfo/UTC": {Data: []byte("TZif2")},
	}
	app := fstest.MapFS{
		"etc/.wh.passwd": {}, // a whiteout: /etc/passwd is gone
		"app/server":     {Data: []byte("\x7fELF"), Mode: 0o755},
	}
	img := overlay.New(base, app)

	loc, _ := img.Resolve("/etc/localtime")
	fmt.Println(loc.Path, "from layer", loc.Layer)
	_, err := img.Stat("etc/passwd")
	fmt.Println(err)
	entries, _ := fs.ReadDir(img, "etc")
	for _, e := range entries {
		fmt.Println(e.Name())
	}
	// Output:
	// usr/share/zoneinfo/UTC from layer 0
	// stat etc/passwd: file does not exist
	// localtime
}
