package writer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

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
	for _, k := range []string{zstdchunked.AnnotationManifestChecksum, zstdchunked.AnnotationManifestPosition, zstdchunked.AnnotationTarSplitPosition} {
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

func ExampleWithFixedChunks() {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	data := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320,000 bytes
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "data", Mode: 0o644, Size: int64(len(data))})
	tw.Write(data)
	tw.Close()

	// Chunks of 100,000 bytes, each its own zstd frame, as estargz cuts
	// them, instead of content-defined ones.
	res, err := writer.Build(context.Background(), io.Discard, &layer,
		writer.WithFormat(toc.FormatZstdChunked), writer.WithFixedChunks(), writer.WithChunkSize(100_000))
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range res.TOC().Entries[0].Chunks {
		fmt.Println(c.Offset, c.Size)
	}
	// Output:
	// 0 100000
	// 100000 100000
	// 200000 100000
	// 300000 20000
}
