package writer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"log"

	"github.com/lazylayer/lazylayer/writer"
)

func Example() {
	// A small layer: a directory and two files.
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "app/", Mode: 0o755})
	for _, f := range []struct{ name, body string }{
		{"app/config.json", `{"debug": false}`},
		{"app/main", "#!/bin/sh\necho hello\n"},
	} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.body))})
		tw.Write([]byte(f.body))
	}
	tw.Close()

	// The container starts with app/main: put it first, so that a lazy
	// reader fetches it before anything else.
	var blob bytes.Buffer
	res, err := writer.Build(context.Background(), &blob, &layer,
		writer.WithPrioritizedFiles([]string{"app/main"}))
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range res.TOC().Entries {
		fmt.Println(e.Type, e.Name)
	}
	fmt.Println("blob size matches:", res.Size == int64(blob.Len()))
	fmt.Println("TOC digest annotated:", res.Annotations["containerd.io/snapshot/stargz/toc.digest"] == res.TOCDigest.String())
	// Output:
	// dir app
	// reg app/main
	// reg .prefetch.landmark
	// reg app/config.json
	// blob size matches: true
	// TOC digest annotated: true
}
