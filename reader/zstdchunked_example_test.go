package reader_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"log"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
)

func ExampleLayer_WriteTar() {
	// A zstd:chunked layer and the annotations its descriptor carries.
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "./etc/hostname", Mode: 0o644, Size: 5})
	tw.Write([]byte("lazy\n"))
	tw.Close()
	var blob bytes.Buffer
	res, err := writer.Build(context.Background(), &blob, bytes.NewReader(layer.Bytes()), writer.WithFormat(toc.FormatZstdChunked))
	if err != nil {
		log.Fatal(err)
	}

	// With the annotations, Open fetches TOC and tar-split in one request
	// and checks them against each other.
	f := fetcher.FromReaderAt(bytes.NewReader(blob.Bytes()), int64(blob.Len()))
	l, err := reader.Open(context.Background(), f, reader.WithAnnotations(res.Annotations))
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	var tarStream bytes.Buffer
	diffID, err := l.WriteTar(context.Background(), &tarStream)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("original tar:", bytes.Equal(tarStream.Bytes(), layer.Bytes()))
	fmt.Println("DiffID:", diffID == res.DiffID)
	// Output:
	// original tar: true
	// DiffID: true
}
