package reader

import (
	"bytes"
	"context"
	"runtime"
	"testing"

	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/lazylayer/lazylayer/writer"
)

// TestOpenKeepsIndexCompactly checks the heap an open layer of small
// files keeps an entry. Most of it is the toc.Entry model (Layer.TOC);
// what the reader adds is a tree node of 64 bytes and no map per
// directory, and the decoder keeps one digest string for a file of one
// chunk. Before, an entry cost some 670 bytes.
func TestOpenKeepsIndexCompactly(t *testing.T) {
	const n = 20_000
	var input, blob bytes.Buffer
	if err := tartest.SmallFiles(&input, n); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Build(context.Background(), &blob, &input); err != nil {
		t.Fatal(err)
	}
	before := heapAfterGC()
	l, err := openBlob(blob.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	per := (int64(heapAfterGC()) - int64(before)) / n
	runtime.KeepAlive(l)
	l.Close()
	t.Logf("%d bytes an entry", per)
	if per > 580 {
		t.Errorf("an open layer of %d small files keeps %d bytes an entry; want at most 580", n, per)
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
