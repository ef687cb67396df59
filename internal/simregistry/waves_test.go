package simregistry

import (
	"testing"
	"time"
)

func TestWaves(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int, d time.Duration) Request {
		return Request{Start: t0.Add(time.Duration(ms) * time.Millisecond), Duration: d}
	}
	for _, tc := range []struct {
		name string
		log  []Request
		want int
	}{
		{"none", nil, 0},
		{"overlapping", []Request{at(0, 20*time.Millisecond), at(5, 20*time.Millisecond)}, 1},
		{"one after the other", []Request{at(0, 20*time.Millisecond), at(20, 20*time.Millisecond)}, 2},
		// The first request's handler has not returned yet, though its
		// client may hold the whole response: the second overlapped it.
		{"in flight", []Request{at(0, 0), at(1, 20*time.Millisecond)}, 1},
	} {
		if got := (Stats{Log: tc.log}).Waves(); got != tc.want {
			t.Errorf("%s: %d waves, want %d", tc.name, got, tc.want)
		}
	}
}
