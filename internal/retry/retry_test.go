package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	p := Policy{Attempts: 5, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	for attempt := 1; attempt < 40; attempt++ {
		d := p.Delay(attempt, 0)
		step := min(p.BaseDelay<<min(attempt-1, 20), p.MaxDelay)
		if d < step/2 || d > step {
			t.Errorf("Delay(%d) = %v, want within [%v, %v]", attempt, d, step/2, step)
		}
	}
	if d := p.Delay(1, 3*time.Second); d != 3*time.Second {
		t.Errorf("delay with Retry-After 3s = %v", d)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "2": 2 * time.Second, "junk": 0, "-1": 0, "99999": MaxAfter,
		"Thu, 01 Jan 2026 00:00:05 GMT": 5 * time.Second, "Wed, 31 Dec 2025 00:00:00 GMT": 0,
	} {
		if got := ParseAfter(in, now); got != want {
			t.Errorf("ParseAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestDoStopsAtFinal(t *testing.T) {
	calls := 0
	err := NewPolicy(5, time.Millisecond).Do(context.Background(), func(int) error {
		calls++
		return &Final{Err: Mark(errors.New("gone"), 0)}
	})
	if calls != 1 || err == nil {
		t.Errorf("%d calls, error %v; want 1 call and the error", calls, err)
	}
}
