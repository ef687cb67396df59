package simregistry_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"time"

	"github.com/lazylayer/lazylayer/internal/simregistry"
)

func ExampleServer() {
	// A registry 20 ms away behind a 50 MB/s link.
	s, err := simregistry.NewServer(simregistry.WithRTT(20*time.Millisecond), simregistry.WithBandwidth(50e6))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	d := s.AddBlob("library/hello", []byte("hello, lazy world"))

	req, _ := http.NewRequest("GET", s.BlobURL("library/hello", d), nil)
	req.Header.Set("Range", "bytes=7-10")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("Content-Range"), string(body))

	st := s.Stats()
	fmt.Println(st.Requests, "request,", st.Bytes, "bytes")
	// Output:
	// 206 Partial Content bytes 7-10/17 lazy
	// 1 request, 4 bytes
}

func ExampleLink_PhysicalLimit() {
	link := simregistry.Link{RTT: 20 * time.Millisecond, Bandwidth: 50e6}
	// A container start that needs 34 MB of compressed chunks.
	fmt.Println(link, "->", link.PhysicalLimit(34e6))
	// Output: 20ms RTT, 50MB/s -> 720ms
}

func ExampleParseBandwidth() {
	bw, err := simregistry.ParseBandwidth("400Mbit/s")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(simregistry.FormatBandwidth(bw))
	// Output: 50MB/s
}
