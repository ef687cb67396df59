package reader

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
)

// flippingFetcher flips a byte of the first `bad` deliveries.
type flippingFetcher struct {
	fetcher.Fetcher
	bad   atomic.Int64
	calls atomic.Int64
}

func (f *flippingFetcher) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	f.calls.Add(1)
	return f.Fetcher.Fetch(ctx, ranges, func(r fetcher.Range, data []byte) error {
		if f.bad.Add(-1) >= 0 {
			data = bytes.Clone(data)
			data[len(data)/2] ^= 1
		}
		return fn(r, data)
	})
}

func TestDamagedFrameIsFetchedAgainOnce(t *testing.T) {
	b := &blobBuilder{chunkSize: 4 << 10}
	content := pseudoRandom(4<<10, 9)
	b.add(&toc.Entry{Name: "f"}, content)
	blob, index := b.finish()

	for _, tc := range []struct {
		bad       int64
		wantErr   bool
		wantCalls int64
	}{{0, false, 1}, {1, false, 2}, {2, true, 2}} {
		f := &flippingFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))}
		f.bad.Store(tc.bad)
		l, err := newLayer(context.Background(), f, index, int64(len(blob)), newConfig(nil))
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.ReadFile("f")
		switch {
		case tc.wantErr && !(errors.Is(err, ErrChunkDigest) || errors.Is(err, ErrCorrupt)):
			t.Errorf("%d damaged deliveries: err = %v, want a digest or corruption error", tc.bad, err)
		case !tc.wantErr && (err != nil || !bytes.Equal(got, content)):
			t.Errorf("%d damaged deliveries: ReadFile = %d bytes, %v", tc.bad, len(got), err)
		}
		if calls := f.calls.Load(); calls != tc.wantCalls {
			t.Errorf("%d damaged deliveries: %d fetches, want %d", tc.bad, calls, tc.wantCalls)
		}
		l.Close()
	}
}
