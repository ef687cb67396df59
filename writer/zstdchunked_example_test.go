package writer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"

	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
	"github.com/opencontainers/go-digest"
)

func ExampleWithFormat() {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "app/", Mode: 0o755})
	body := []byte("#!/bin/sh\necho hello\n")
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "app/main", Mode: 0o755, Size: int64(len(body))})
	tw.Write(body)
	tw.Close()
	input := bytes.Clone(layer.Bytes())

	var blob bytes.Buffer
	res, err := writer.Build(context.Background(), &blob, &layer, writer.WithFormat(toc.FormatZstdChunked))
	if err != nil {
		log.Fatal(err)
	}
	// Any zstd reader gives back the input tar, so the DiffID is unchanged.
	zr, _ := zstd.NewReader(&blob)
	defer zr.Close()
	plain, _ := io.ReadAll(zr)
	fmt.Println("decompresses to the input:", bytes.Equal(plain, input))
	fmt.Println("DiffID is the input's digest:", res.DiffID == digest.FromBytes(input))
	for _, k := range []string{toc.AnnotationZstdChunkedManifestChecksum, toc.AnnotationZstdChunkedManifestPosition, toc.AnnotationZstdChunkedTarSplitPosition} {
		_, ok := res.Annotations[k]
		fmt.Println(k, ok)
	}
	// Output:
	// decompresses to the input: true
	// DiffID is the input's digest: true
	// io.github.containers.zstd-chunked.manifest-checksum true
	// io.github.containers.zstd-chunked.manifest-position true
	// io.github.containers.zstd-chunked.tarsplit-position true
}
