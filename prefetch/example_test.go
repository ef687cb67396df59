package prefetch_test

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"testing/fstest"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lazylayer/lazylayer/overlay"
	"github.com/lazylayer/lazylayer/prefetch"
)

// An image of two layers: a base with a shell and a time zone, and an
// application layer whose entrypoint is a script run by that shell.
func exampleImage() *overlay.FS {
	base := fstest.MapFS{
		"bin/sh":                            {Data: []byte("not an ELF file in this example"), Mode: 0o755},
		"etc/passwd":                        {Data: []byte("root:x:0:0::/root:/bin/sh\n")},
		"etc/localtime":                     {Data: []byte("/usr/share/zoneinfo/UTC"), Mode: fs.ModeSymlink | 0o777},
		"usr/share/zoneinfo/UTC":            {Data: []byte("TZif2")},
		"usr/share/doc/sh/README":           {Data: []byte("docs")},
		"etc/ssl/certs/ca-certificates.crt": {Data: []byte("-----BEGIN CERTIFICATE-----")},
	}
	app := fstest.MapFS{
		"usr/local/bin/start": {Data: []byte("#!/bin/sh\nexec server\n"), Mode: 0o755},
		"etc/.wh.passwd":      {}, // the application layer deletes /etc/passwd
	}
	return overlay.New(base, app)
}

func ExampleFromImageConfig() {
	img := exampleImage()
	plan, err := prefetch.FromImageConfig(context.Background(), img, v1.ImageConfig{
		Entrypoint: []string{"start"},
		Env:        []string{"PATH=/usr/local/bin:/bin"},
	})
	if err != nil {
		fmt.Println("partly resolved:", err)
	}
	for _, it := range plan.Items() {
		fmt.Printf("layer %d %-36s %s\n", it.Layer, it.Path, it.Reason)
	}
	// Output:
	// layer 1 usr/local/bin/start                  entrypoint
	// layer 0 bin/sh                               interpreter
	// layer 0 usr/share/zoneinfo/UTC               runtime
	// layer 0 etc/ssl/certs/ca-certificates.crt    runtime
}

func ExampleParseStrace() {
	const out = `1234  execve("/usr/bin/python3", ["python3"], 0x7ffd /* 5 vars */) = 0
1234  openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
1234  openat(AT_FDCWD, "/lib/libmissing.so", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)
1234  newfstatat(AT_FDCWD, "/usr/lib/python3.12", {st_mode=S_IFDIR|0755, ...}, 0) = 0
`
	accesses, err := prefetch.ParseStrace(strings.NewReader(out))
	if err != nil {
		panic(err)
	}
	for _, a := range accesses {
		fmt.Println(a.Op, a.Path)
	}
	// Output:
	// exec /usr/bin/python3
	// read /etc/ld.so.cache
	// stat /usr/lib/python3.12
}

func ExampleMerge() {
	var recorded, static prefetch.Plan
	recorded.Add(prefetch.Item{Path: "/app/server", Priority: 0, Reason: prefetch.ReasonTrace})
	recorded.Add(prefetch.Item{Path: "/app/data.db", Offset: 0, Length: 4096, Priority: 1, Reason: prefetch.ReasonTrace})
	static.Add(prefetch.Item{Path: "/lib/libc.so.6", Priority: 0, Reason: prefetch.ReasonELFNeeded})
	static.Add(prefetch.Item{Path: "/app/server", Priority: 5, Reason: prefetch.ReasonEntrypoint})
	for _, it := range prefetch.Merge(&recorded, &static).Items() {
		fmt.Println(it)
	}
	// Output:
	// 0 L0:app/server (trace)
	// 0 L0:lib/libc.so.6 (elf-needed)
	// 1 L0:app/data.db[0+4096] (trace)
}

// A plan travels with the image as an annotation, and becomes a plan again
// on the consumer's side.
func ExamplePlan_Patterns() {
	var plan prefetch.Plan
	for i, p := range []string{"usr/bin/python3.12", "usr/lib/python3.12/encodings/__init__.py",
		"usr/lib/python3.12/encodings/aliases.py", "usr/lib/python3.12/encodings/utf_8.py"} {
		plan.Add(prefetch.Item{Path: p, Priority: i})
	}
	annotations := map[string]string{
		prefetch.AnnotationPatterns: plan.Patterns(-1, 64).String(),
	}
	fmt.Println(annotations[prefetch.AnnotationPatterns])

	ps, err := prefetch.ParsePatterns(annotations[prefetch.AnnotationPatterns])
	if err != nil {
		panic(err)
	}
	fmt.Println(ps.Match("/usr/lib/python3.12/encodings/latin_1.py"), ps.Match("usr/lib/python3.12/os.py"))
	// Output:
	// usr/bin/python3.12
	// usr/lib/python3.12/encodings/*
	// true false
}
