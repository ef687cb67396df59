package fetcher_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
)

func TestSequentialReader(t *testing.T) {
	blob := bytes.Repeat([]byte("0123456789"), 1000)
	for _, piece := range []int64{1, 7, 4096, 100000} {
		r := fetcher.NewSequentialReader(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))), int64(len(blob)), piece)
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, blob) {
			t.Errorf("pieces of %d: %d bytes, %v", piece, len(got), err)
		}
	}

	// A blob shorter than the size asked for is an error, not a short read.
	r := fetcher.NewSequentialReader(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))), int64(len(blob))+10, 4096)
	defer r.Close()
	if _, err := io.ReadAll(r); err == nil {
		t.Error("reading past the blob's end: no error")
	}

	// Close before reading stops the fetches.
	ctx, cancel := context.WithCancel(context.Background())
	r2 := fetcher.NewSequentialReader(ctx, fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))), int64(len(blob)), 1)
	cancel()
	r2.Close()
	if _, err := io.ReadAll(r2); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v", err)
	}
}
