package fetcher_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/fetcher"
)

// rangeHost is a blob server that does not serve multi-range requests,
// in one of the ways real hosts do not.
type rangeHost struct {
	name string
	// serve answers a request; multi tells whether it asks for several
	// ranges.
	serve func(w http.ResponseWriter, r *http.Request, blob []byte, multi bool)
	// wholeOnce says the whole blob may be read once: the host answers
	// some range requests with it.
	wholeOnce bool
}

func serveWhole(w http.ResponseWriter, r *http.Request, blob []byte) {
	r.Header.Del("Range")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
}

var rangeHosts = []rangeHost{{
	name:      "ignores ranges",
	serve:     func(w http.ResponseWriter, r *http.Request, blob []byte, _ bool) { serveWhole(w, r, blob) },
	wholeOnce: true,
}, {
	name: "whole blob for multi-range",
	serve: func(w http.ResponseWriter, r *http.Request, blob []byte, multi bool) {
		if multi {
			serveWhole(w, r, blob)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	},
	wholeOnce: true,
}, {
	name: "400 to multi-range",
	serve: func(w http.ResponseWriter, r *http.Request, blob []byte, multi bool) {
		if multi {
			http.Error(w, "<Error><Code>InvalidArgument</Code></Error>", http.StatusBadRequest)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	},
}, {
	name: "416 to multi-range",
	serve: func(w http.ResponseWriter, r *http.Request, blob []byte, multi bool) {
		if multi {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(blob)))
			http.Error(w, "multi-range not satisfiable", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	},
}}

// TestHTTPNoMultiRangeHosts fetches ranges from several goroutines at once
// from a fresh fetcher, against hosts that do not serve multi-range
// requests. The server holds its first answer until every other
// goroutine's request waits for it. Every range must come right and once;
// only one multi-range request may ever be sent, since the first answer
// tells the host does not serve them; and the whole blob must be read at
// most once.
func TestHTTPNoMultiRangeHosts(t *testing.T) {
	const goroutines, perGoroutine = 4, 4
	blob := testBlob(2 << 20)
	// Each goroutine's ranges lie far apart, so that they make one
	// multi-range request, and the last overlaps the next goroutine's
	// first.
	ranges := make([][]fetcher.Range, goroutines)
	for i := range goroutines * perGoroutine {
		k := i % goroutines
		ranges[k] = append(ranges[k], fetcher.Range{Offset: int64(i)*120_000 + int64(i*i), Length: 1000 + int64(i)*300})
	}
	for k := range ranges {
		next := ranges[(k+1)%goroutines][0]
		ranges[k] = append(ranges[k], fetcher.Range{Offset: next.Offset + 10, Length: 2000})
	}

	for _, host := range rangeHosts {
		t.Run(host.name, func(t *testing.T) {
			var (
				parks      atomic.Int32
				allParked  = make(chan struct{})
				parkedOnce sync.Once

				mu             sync.Mutex
				requests       []string
				multi          int
				firstMultiDone bool
				early          int // multi-range requests sent before the first was answered
			)
			release := func() { parkedOnce.Do(func() { close(allParked) }) }
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				isMulti := strings.Contains(r.Header.Get("Range"), ",")
				mu.Lock()
				requests = append(requests, r.Header.Get("Range"))
				first := len(requests) == 1
				if isMulti {
					multi++
					if multi > 1 && !firstMultiDone {
						early++
						release() // the first answer is no longer needed to prove the point
					}
				}
				mu.Unlock()
				if first {
					select {
					case <-allParked:
					case <-r.Context().Done():
						return
					}
				}
				host.serve(w, r, blob, isMulti)
				if isMulti {
					mu.Lock()
					firstMultiDone = true
					mu.Unlock()
				}
			}))
			defer srv.Close()
			f, err := fetcher.NewHTTP(srv.URL+"/v2/a/blobs/sha256:"+strings.Repeat("0", 64),
				fetcher.WithSize(int64(len(blob))), fast)
			if err != nil {
				t.Fatal(err)
			}
			fetcher.SetParkHook(f, func() {
				if parks.Add(1) == goroutines-1 {
					release()
				}
			})

			errs := make(chan error, goroutines)
			for k := range goroutines {
				go func() { errs <- fetchChecked(f, blob, ranges[k]) }()
			}
			for range goroutines {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if early > 0 || multi != 1 {
				t.Errorf("%d multi-range requests, %d of them before the first was answered; want 1 in all (requests %q)", multi, early, requests)
			}
			st := f.Stats()
			if st.Ranges != goroutines*(perGoroutine+1) {
				t.Errorf("%d ranges delivered, want %d", st.Ranges, goroutines*(perGoroutine+1))
			}
			if st.Bytes > int64(len(blob)) {
				t.Errorf("%d bytes received for a blob of %d: want the whole blob read at most once (requests %q)", st.Bytes, len(blob), requests)
			}
			if !host.wholeOnce && st.Bytes > 100_000 {
				t.Errorf("%d bytes received: a host serving single ranges was read beyond them", st.Bytes)
			}
			t.Logf("%d requests (%d bytes): %q", len(requests), st.Bytes, requests)
		})
	}
}

// fetchChecked fetches ranges and checks each was delivered once with
// the blob's bytes.
func fetchChecked(f fetcher.Fetcher, blob []byte, ranges []fetcher.Range) error {
	var mu sync.Mutex
	calls := map[fetcher.Range]int{}
	err := f.Fetch(context.Background(), ranges, func(r fetcher.Range, data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		calls[r]++
		if calls[r] > 1 {
			return fmt.Errorf("range %v delivered twice", r)
		}
		if !bytes.Equal(data, blob[r.Offset:r.End()]) {
			return fmt.Errorf("range %v: wrong bytes", r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range ranges {
		if calls[r] != 1 {
			return fmt.Errorf("range %v delivered %d times", r, calls[r])
		}
	}
	return nil
}

// TestHTTPWholeBlobSubscriberCancels checks that when a host answers a
// single range with the whole blob, a request in flight at the time is
// aborted and its Fetch served by that answer; and that this Fetch
// returns when its context ends, without its callback being called
// afterwards, while the Fetch whose request got the answer completes.
func TestHTTPWholeBlobSubscriberCancels(t *testing.T) {
	blob := testBlob(1 << 20)
	arrived, second, resume, secondDone := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	var requests atomic.Int32
	var aborted atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch requests.Add(1) {
		case 1: // the first Fetch's single range: the whole blob, in two parts
			close(arrived)
			<-second
			w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
			w.WriteHeader(http.StatusOK)
			w.Write(blob[:100_000])
			w.(http.Flusher).Flush()
			select {
			case <-resume:
			case <-r.Context().Done():
				return
			}
			w.Write(blob[100_000:])
		case 2: // the second Fetch's: to be aborted unanswered
			defer close(secondDone)
			close(second)
			select {
			case <-r.Context().Done():
				aborted.Store(true)
			case <-time.After(10 * time.Second):
				http.Error(w, "not aborted", http.StatusInternalServerError)
			}
		default:
			http.Error(w, "two requests expected", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	f, _ := fetcher.NewHTTP(srv.URL+"/v2/a/blobs/sha256:"+strings.Repeat("0", 64), fetcher.WithSize(int64(len(blob))), fast)

	owner := make(chan error, 1)
	go func() { owner <- fetchChecked(f, blob, []fetcher.Range{{Offset: 900_000, Length: 10}}) }()
	<-arrived
	ctx, cancel := context.WithCancel(context.Background())
	var returned atomic.Bool
	sub := make(chan error, 1)
	go func() {
		err := f.Fetch(ctx, []fetcher.Range{{Offset: 20, Length: 10}, {Offset: 800_000, Length: 10}}, func(r fetcher.Range, data []byte) error {
			if returned.Load() {
				t.Errorf("range %v delivered after Fetch returned", r)
			}
			if !bytes.Equal(data, blob[r.Offset:r.End()]) {
				t.Errorf("range %v: wrong bytes", r)
			}
			if r.Offset == 20 {
				cancel() // served by the first answer, which has reached this range
			}
			return nil
		})
		returned.Store(true)
		sub <- err
	}()
	if err := <-sub; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Fetch = %v, want context.Canceled", err)
	}
	close(resume)
	if err := <-owner; err != nil {
		t.Errorf("the other Fetch: %v", err)
	}
	<-secondDone
	if n := requests.Load(); n != 2 || !aborted.Load() {
		t.Errorf("%d requests, second aborted: %v; want the second aborted, its Fetch served by the first", n, aborted.Load())
	}
}

// TestHTTPSingleRangeGap checks that for a host that refuses multi-range
// requests, spans closer than SingleRangeGap are read with one range.
func TestHTTPSingleRangeGap(t *testing.T) {
	blob := testBlob(1 << 20)
	var mu sync.Mutex
	var asks []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asks = append(asks, r.Header.Get("Range"))
		mu.Unlock()
		rangeHosts[2].serve(w, r, blob, strings.Contains(r.Header.Get("Range"), ","))
	}))
	defer srv.Close()
	f, _ := fetcher.NewHTTP(srv.URL+"/v2/a/blobs/sha256:"+strings.Repeat("0", 64), fetcher.WithSize(int64(len(blob))),
		fetcher.WithCoalescing(fetcher.CoalescePolicy{MaxGap: 100, SingleRangeGap: 10_000}), fast)
	ranges := []fetcher.Range{{Offset: 0, Length: 100}, {Offset: 5000, Length: 100}, {Offset: 9000, Length: 100},
		{Offset: 500_000, Length: 100}, {Offset: 520_000, Length: 100}}
	if err := fetchChecked(f, blob, ranges); err != nil {
		t.Fatal(err)
	}
	slices.Sort(asks[1:])
	want := []string{"bytes=0-99,5000-5099,9000-9099,500000-500099,520000-520099",
		"bytes=0-9099", "bytes=500000-500099", "bytes=520000-520099"}
	if !slices.Equal(asks, want) {
		t.Errorf("Range headers %q, want %q", asks, want)
	}
}
