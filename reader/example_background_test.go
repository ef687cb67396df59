package reader_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/reader"
)

// Fetching a whole layer into the cache in the background, so that later
// reads need no registry.
func ExampleWithBackgroundFetch() {
	blob, res := exampleBlob()
	f := fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))

	done := make(chan error, 1)
	layer, err := reader.Open(context.Background(), f,
		reader.WithTOCDigest(res.TOCDigest),
		reader.WithCache(cache.NewMemory(64<<20)),
		reader.WithBackgroundFetch(func(err error) { done <- err }))
	if err != nil {
		log.Fatal(err)
	}
	defer layer.Close()

	// The workload starts reading at once; the rest arrives meanwhile.
	data, err := fs.ReadFile(layer, "usr/bin/app")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", data)
	fmt.Println("background fetch:", <-done)
	// Output:
	// #!/bin/sh
	// echo hello
	// background fetch: <nil>
}
