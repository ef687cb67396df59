package reader

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
)

// manyFilesTar is a tar of n small files with long names, whose index
// takes many of Open's 64 KiB pieces.
func manyFilesTar(t *testing.T, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for i := range n {
		data := fmt.Appendf(nil, "file %d\n", i)
		name := fmt.Sprintf("dir%02d/a-rather-long-file-name-so-that-the-index-is-large-%05d.txt", i%17, i)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	return b.Bytes()
}

// scramblingFetcher hands the ranges of each fetch over in reverse order,
// from as many goroutines, as a fetcher with parallel connections may;
// with failAfter > 0 it fails the fetch after that many ranges.
type scramblingFetcher struct {
	fetcher.Fetcher
	failAfter int
}

var errFetchFailed = errors.New("connection reset")

func (s *scramblingFetcher) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for i, r := range slices.Backward(ranges) {
		if s.failAfter > 0 && len(ranges)-i > s.failAfter {
			mu.Lock()
			errs = append(errs, errFetchFailed)
			mu.Unlock()
			break
		}
		wg.Go(func() {
			err := s.Fetcher.Fetch(ctx, []fetcher.Range{r}, fn)
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// TestOpenDecodesIndexArrivingInAnyOrder opens layers whose index spans
// many pieces, handed over out of order and concurrently, in both formats,
// and from a footer or from annotations; then it checks that a fetch that
// fails midway fails Open, without a hang.
func TestOpenDecodesIndexArrivingInAnyOrder(t *testing.T) {
	input := manyFilesTar(t, 3000)
	for _, format := range []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked} {
		var blob bytes.Buffer
		res, err := writer.Build(context.Background(), &blob, bytes.NewReader(input), writer.WithFormat(format))
		if err != nil {
			t.Fatal(err)
		}
		base := fetcher.FromReaderAt(bytes.NewReader(blob.Bytes()), int64(blob.Len()))
		for name, opts := range map[string][]Option{
			"footer":      {WithTailHint(100)},
			"tail":        {WithTailHint(1 << 30)},
			"annotations": {WithAnnotations(res.Annotations)},
		} {
			t.Run(fmt.Sprintf("%v/%s", format, name), func(t *testing.T) {
				l, err := Open(context.Background(), &scramblingFetcher{Fetcher: base}, opts...)
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				if got := len(l.TOC().Entries); got < 3000 {
					t.Fatalf("TOC of %d entries, want at least 3000", got)
				}
				name := "dir07/a-rather-long-file-name-so-that-the-index-is-large-02999.txt"
				if data, err := l.ReadFile(name); err != nil || string(data) != "file 2999\n" {
					t.Errorf("ReadFile(%s) = %q, %v", name, data, err)
				}
				_, err = Open(context.Background(), &scramblingFetcher{Fetcher: base, failAfter: 2}, opts...)
				if !errors.Is(err, errFetchFailed) {
					t.Errorf("fetch failing midway: error %v, want %v", err, errFetchFailed)
				}
			})
		}
	}
}
