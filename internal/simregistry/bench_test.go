package simregistry

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkLinkAccuracy downloads over shaped links and reports how close
// the achieved timing is to the model: "ratio" is the measured wall time
// divided by RTT + bytes/bandwidth (1.00 is perfect; sleep and scheduling
// overheads push it above). With several parallel streams the bytes are
// summed, since they share one pipe.
//
//	go test -run '^$' -bench LinkAccuracy -benchtime 3x ./internal/simregistry/
func BenchmarkLinkAccuracy(b *testing.B) {
	blob := make([]byte, 8<<20)
	for _, tc := range []struct {
		link    Link
		streams int
	}{
		{Link{RTT: 20 * time.Millisecond, Bandwidth: 50e6}, 1},
		{Link{RTT: 20 * time.Millisecond, Bandwidth: 50e6}, 4},
		{Link{RTT: 2 * time.Millisecond, Bandwidth: 200e6}, 1},
	} {
		b.Run(fmt.Sprintf("%s/streams=%d", FormatBandwidth(tc.link.Bandwidth), tc.streams), func(b *testing.B) {
			s, err := NewServer(WithLink(tc.link))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			url := s.BlobURL("bench", s.AddBlob("bench", blob))
			per := int64(len(blob)) / int64(tc.streams)
			model := tc.link.RTT + tc.link.TransferTime(per*int64(tc.streams))
			b.SetBytes(per * int64(tc.streams))
			var total time.Duration
			for b.Loop() {
				start := time.Now()
				var wg sync.WaitGroup
				for i := range tc.streams {
					wg.Add(1)
					go func() {
						defer wg.Done()
						req, _ := http.NewRequest("GET", url, nil)
						req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", int64(i)*per, int64(i+1)*per-1))
						resp, err := http.DefaultClient.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}()
				}
				wg.Wait()
				total += time.Since(start)
			}
			b.ReportMetric(float64(total)/float64(b.N)/float64(model), "ratio")
		})
	}
}

// BenchmarkLinkAccuracyManyRanges is BenchmarkLinkAccuracy for one
// multi-range request of many small ranges, as a prefetch of small files
// sends: part headers and small parts must not slow the link down.
//
//	go test -run '^$' -bench LinkAccuracyManyRanges -benchtime 3x ./internal/simregistry/
func BenchmarkLinkAccuracyManyRanges(b *testing.B) {
	link := Link{RTT: 20 * time.Millisecond, Bandwidth: 50e6}
	blob := make([]byte, 16<<20)
	for _, size := range []int{1 << 10, 8 << 10} {
		b.Run(fmt.Sprintf("%s/part=%d", FormatBandwidth(link.Bandwidth), size), func(b *testing.B) {
			s, err := NewServer(WithLink(link))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			url := s.BlobURL("bench", s.AddBlob("bench", blob))
			const parts = 1000
			var spec []string
			for i := range parts {
				at := i * len(blob) / parts
				spec = append(spec, fmt.Sprintf("%d-%d", at, at+size-1))
			}
			var total time.Duration
			var got int64
			for b.Loop() {
				start := time.Now()
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Range", "bytes="+strings.Join(spec, ","))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				got, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				total += time.Since(start)
			}
			b.SetBytes(got)
			model := link.RTT + link.TransferTime(got)
			b.ReportMetric(float64(total)/float64(b.N)/float64(model), "ratio")
		})
	}
}
