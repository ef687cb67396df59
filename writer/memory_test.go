package writer

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"testing"

	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/lazylayer/lazylayer/toc"
)

// TestResultKeepsIndexCompactly checks what a Result of a layer of small
// files retains: the entries as toc.Entry values cost some 400 bytes
// each, which for a layer of a million files was more than all of
// Build's buffers; Build keeps them compactly and TOC() expands them on
// demand.
func TestResultKeepsIndexCompactly(t *testing.T) {
	const n = 20_000
	var input bytes.Buffer
	if err := tartest.SmallFiles(&input, n); err != nil {
		t.Fatal(err)
	}
	for _, format := range []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked} {
		t.Run(format.String(), func(t *testing.T) {
			before := heapAfterGC()
			res, err := Build(context.Background(), io.Discard, bytes.NewReader(input.Bytes()), WithFormat(format))
			if err != nil {
				t.Fatal(err)
			}
			retained := int64(heapAfterGC()) - int64(before)
			runtime.KeepAlive(res)
			t.Logf("%d bytes an entry", retained/n)
			if per := retained / n; per > 150 {
				t.Errorf("the Result of %d small files retains %d bytes, %d an entry; want at most 150", n, retained, per)
			}
		})
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
