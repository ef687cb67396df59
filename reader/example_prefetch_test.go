package reader_test

import (
	"bytes"
	"context"
	"fmt"
	"log"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/reader"
)

func ExampleLayer_StartPrefetch() {
	blob, res := exampleBlob()
	f := fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))
	layer, err := reader.Open(context.Background(), f,
		reader.WithTOCDigest(res.TOCDigest), reader.WithCache(cache.NewMemory(1<<20)))
	if err != nil {
		log.Fatal(err)
	}
	defer layer.Close()
	opened := f.Stats().Requests

	// Start fetching what the workload will read; the workload need not
	// wait: its reads join the prefetch's fetches.
	p, err := layer.StartPrefetch(context.Background(),
		[]reader.FileRange{{Name: "usr/bin/run"}, {Name: "etc/os-release"}},
		reader.WithPrefetchProgress(func(p reader.PrefetchProgress) {
			fmt.Printf("prefetched %d of %d frames\n", p.FramesDone, p.Frames)
		}))
	if err != nil {
		log.Fatal(err)
	}
	data, err := layer.ReadFile("usr/bin/run")
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", data)
	// One read: the prefetch asks for the frames in blob order, where
	// they lie side by side, and ReadFile waited for it.
	fmt.Println("requests after open:", f.Stats().Requests-opened)
	// Output:
	// prefetched 0 of 2 frames
	// prefetched 1 of 2 frames
	// prefetched 2 of 2 frames
	// #!/bin/sh
	// echo hello
	// requests after open: 1
}
