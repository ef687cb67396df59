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
// files keeps an entry: a 96-byte record, a 48-byte chunk, its name in one
// string with all others, and a tree node of 64 bytes, with no map per
// directory; no toc.Entry is built until asked for. An entry cost some
// 670 bytes before the tree was trimmed, and 510 while the layer kept the
// toc.Entry model; now about 255.
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
	if per > 300 {
		t.Errorf("an open layer of %d small files keeps %d bytes an entry; want at most 300", n, per)
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
