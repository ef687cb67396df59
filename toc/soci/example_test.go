package soci_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"log"
	"time"

	"github.com/lazylayer/lazylayer/toc/soci"
)

func Example() {
	// A gzip layer of one file.
	var layer bytes.Buffer
	zw := gzip.NewWriter(&layer)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: 6, ModTime: time.Unix(1700000000, 0)})
	tw.Write([]byte("hello\n"))
	tw.Close()
	zw.Close()

	z, err := soci.Index(context.Background(), &layer, soci.Gzip)
	if err != nil {
		log.Fatal(err)
	}
	enc, err := soci.Encode(z)
	if err != nil {
		log.Fatal(err)
	}
	dec, err := soci.Decode(enc)
	if err != nil {
		log.Fatal(err)
	}
	f := dec.Files[0]
	fmt.Println(f.Name, f.Type, f.Offset, f.Size, f.ModTime)
	fmt.Println(len(dec.SpanDigests), "span")
	// Output:
	// hello.txt reg 512 6 2023-11-14 22:13:20 +0000 UTC
	// 1 span
}
