package fetcher_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/lazylayer/lazylayer/fetcher"
)

func ExampleFromReaderAt() {
	blob := strings.NewReader("hello, lazy layers")
	f := fetcher.FromReaderAt(blob, blob.Size())

	ranges := []fetcher.Range{{Offset: 0, Length: 5}, {Offset: 7, Length: 4}}
	err := f.Fetch(context.Background(), ranges, func(r fetcher.Range, data []byte) error {
		fmt.Printf("%v: %q\n", r, data)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	fmt.Printf("%d requests, %d bytes\n", f.Stats().Requests, f.Stats().Bytes)
	// Output:
	// 0-4: "hello"
	// 7-10: "lazy"
	// 2 requests, 9 bytes
}

func ExampleCoalesce() {
	ranges := []fetcher.Range{
		{Offset: 1000, Length: 100},
		{Offset: 0, Length: 100},
		{Offset: 150, Length: 50}, // 50 bytes after the previous one
		{Offset: 5000, Length: 10},
	}
	policy := fetcher.CoalescePolicy{MaxGap: 64, MaxSpansPerRequest: 2}
	for i, req := range fetcher.Coalesce(ranges, policy) {
		for _, s := range req.Spans {
			fmt.Printf("request %d: bytes %v cover ranges %v\n", i, s.Range, s.Covers)
		}
	}
	// Output:
	// request 0: bytes 0-199 cover ranges [1 2]
	// request 0: bytes 1000-1099 cover ranges [0]
	// request 1: bytes 5000-5009 cover ranges [3]
}

func ExampleNewHTTP() {
	f, err := fetcher.NewHTTP("registry.example.com/library/app@sha256:"+strings.Repeat("ab", 32),
		fetcher.WithDockerConfig("/home/me/.docker/config.json"),
		fetcher.WithMaxConnections(8))
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = f // f.Size(ctx) and f.Fetch(ctx, ranges, fn) talk to the registry.
}
