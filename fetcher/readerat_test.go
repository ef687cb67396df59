package fetcher_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
)

func TestReaderAt(t *testing.T) {
	blob := testBlob(10_000)
	var observed atomic.Int64
	f := fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)),
		fetcher.WithObserver(func(info fetcher.RequestInfo) { observed.Add(info.Bytes) }))
	got, err := fetchAll(t, f, []fetcher.Range{{Offset: 0, Length: 10}, {Offset: 9_990, Length: 10}, {Offset: 5, Length: 0}})
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, blob, got)
	st := f.Stats()
	if st.Requests != 3 || st.Ranges != 3 || st.Bytes != 20 || observed.Load() != 20 {
		t.Errorf("Stats = %+v, observed %d bytes", st, observed.Load())
	}

	calls := 0
	err = f.Fetch(context.Background(), []fetcher.Range{{Offset: 0, Length: 1}, {Offset: 9_999, Length: 2}},
		func(fetcher.Range, []byte) error { calls++; return nil })
	if !errors.Is(err, fetcher.ErrRange) || calls != 0 {
		t.Errorf("Fetch past the end = %v after %d calls, want ErrRange before any", err, calls)
	}
}

func TestReaderAtShortRead(t *testing.T) {
	// The size claims more than the reader holds.
	f := fetcher.FromReaderAt(bytes.NewReader([]byte("abc")), 10)
	_, err := fetchAll(t, f, []fetcher.Range{{Offset: 2, Length: 5}})
	if err == nil {
		t.Fatal("short read: no error")
	}
	if st := f.Stats(); st.Failures != 1 || st.Ranges != 0 {
		t.Errorf("Stats = %+v", st)
	}
}
