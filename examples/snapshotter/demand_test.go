package snapshotter

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// admitted runs admit on its own goroutine and returns a channel that
// receives its error.
func admitted(d *demand, size int64, from int) chan error {
	done := make(chan error, 1)
	go func() { done <- d.admit(context.Background(), size, from, backgroundMisses) }()
	return done
}

func TestBackgroundYieldsToOnDemandAndPrefetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDemand(1 << 30) // a byte is admitted without a pause
		for _, onDemand := range []bool{true, false} {
			end := d.start(onDemand)
			done := admitted(d, 1, d.count())
			synctest.Wait()
			select {
			case <-done:
				t.Fatalf("background request admitted while a request (on-demand %v) was under way", onDemand)
			default:
			}
			end()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestBackgroundIsPacedUntilThePlanMisses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rate = 4 << 20
		d := newDemand(rate)
		from := d.count()
		start := time.Now()
		for range 3 {
			if err := <-admitted(d, 2<<20, from); err != nil {
				t.Fatal(err)
			}
		}
		// 4 MiB admitted before the third request: a second at 4 MiB/s.
		if got := time.Since(start); got != time.Second {
			t.Errorf("three requests of 2 MiB at 4 MiB/s admitted over %v, want 1s", got)
		}
		// Once the plan missed, the background fetch goes at the link's
		// pace.
		for range backgroundMisses {
			d.start(true)()
		}
		start = time.Now()
		for range 3 {
			if err := <-admitted(d, 2<<20, from); err != nil {
				t.Fatal(err)
			}
		}
		if got := time.Since(start); got != 0 {
			t.Errorf("after the plan missed, requests were held for %v", got)
		}
	})
}
