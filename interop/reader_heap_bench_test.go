package interop

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/writer"
)

// BenchmarkOpenHeap opens one eStargz blob held in memory with our reader
// and with the reference's estargz.Open, and reports the heap in use after
// a GC with the opened layer alive, less what it was before
// (heap-bytes), and the time Open took (open-ns). The blobs are the
// GOROOT tree (the reference writer's) and a layer of 300,000 files of 0
// to 512 bytes (tartest.SmallFiles, our writer's). Run with -benchtime 1x.
func BenchmarkOpenHeap(b *testing.B) {
	goroot, _, _ := loadGorootBlob(b)
	var small bytes.Buffer
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tartest.SmallFiles(pw, 300_000)) }()
	if _, err := writer.Build(context.Background(), &small, pr); err != nil {
		b.Fatal(err)
	}
	for _, blob := range []struct {
		name string
		data []byte
	}{{"goroot", goroot}, {"small-300k", small.Bytes()}} {
		data := blob.data
		b.Run(blob.name+"/lazylayer", func(b *testing.B) {
			for b.Loop() {
				measureOpenHeap(b, func() (any, error) {
					return reader.Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(data), int64(len(data))))
				})
			}
		})
		b.Run(blob.name+"/estargz", func(b *testing.B) {
			for b.Loop() {
				measureOpenHeap(b, func() (any, error) {
					return estargz.Open(io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))))
				})
			}
		})
	}
}

func measureOpenHeap(b *testing.B, open func() (any, error)) {
	before := heapInUse()
	start := time.Now()
	layer, err := open()
	took := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	after := heapInUse()
	runtime.KeepAlive(layer)
	if l, ok := layer.(*reader.Layer); ok {
		l.Close()
	}
	b.ReportMetric(float64(after-before), "heap-bytes")
	b.ReportMetric(float64(took.Nanoseconds()), "open-ns")
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
