// Package retry spaces attempts of HTTP work with jittered exponential
// backoff, honouring a server's Retry-After, for package fetcher and
// package registry alike.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// MaxAfter caps how long a server's Retry-After can make us wait.
const MaxAfter = 30 * time.Second

// Temporary marks a failure worth retrying: a lost connection, a short
// body, a timed-out attempt, 429 or most 5xx statuses.
type Temporary struct {
	Err   error
	After time.Duration // the server's Retry-After; 0 if none
}

func (e *Temporary) Error() string { return e.Err.Error() }
func (e *Temporary) Unwrap() error { return e.Err }

// Mark returns err marked worth retrying, not before after.
func Mark(err error, after time.Duration) error { return &Temporary{Err: err, After: after} }

// Status marks err retryable when resp's status says trying again may
// help, honouring Retry-After.
func Status(resp *http.Response, err error) error {
	switch c := resp.StatusCode; {
	case c == http.StatusTooManyRequests, c == http.StatusRequestTimeout,
		c >= 500 && c != http.StatusNotImplemented && c != http.StatusHTTPVersionNotSupported:
		return Mark(err, ParseAfter(resp.Header.Get("Retry-After"), time.Now()))
	}
	return err
}

// ParseAfter reads a Retry-After of delay-seconds or an HTTP date, capped
// at MaxAfter; junk means no hint.
func ParseAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return min(time.Duration(secs)*time.Second, MaxAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), MaxAfter)
	}
	return 0
}

// Policy bounds attempts and spaces them with exponential backoff and
// jitter.
type Policy struct {
	Attempts  int
	BaseDelay time.Duration
	MaxDelay  time.Duration
}

// NewPolicy returns a policy of attempts (at least 1) whose delay starts
// at delay and doubles up to 50 times itself.
func NewPolicy(attempts int, delay time.Duration) Policy {
	return Policy{Attempts: max(attempts, 1), BaseDelay: delay, MaxDelay: 50 * delay}
}

// Delay returns how long to wait before attempt+1: half of the
// exponential step plus a random part of the other half, at least the
// server's Retry-After.
func (p Policy) Delay(attempt int, retryAfter time.Duration) time.Duration {
	d := p.MaxDelay
	if attempt < 32 && p.BaseDelay<<(attempt-1) < p.MaxDelay && p.BaseDelay<<(attempt-1) > 0 {
		d = p.BaseDelay << (attempt - 1)
	}
	if d > 1 {
		d = d/2 + rand.N(d/2)
	}
	return max(d, retryAfter)
}

// Final wraps err so that Do stops at it, even if it wraps an error
// marked worth retrying.
type Final struct{ Err error }

func (f *Final) Error() string { return f.Err.Error() }
func (f *Final) Unwrap() error { return f.Err }

// Do runs op until it succeeds, fails with an error not marked
// Temporary (or marked Final), the attempts run out or ctx ends. op
// receives the attempt number, starting at 1.
func (p Policy) Do(ctx context.Context, op func(attempt int) error) error {
	for attempt := 1; ; attempt++ {
		err := op(attempt)
		var tmp *Temporary
		var final *Final
		if err == nil || !errors.As(err, &tmp) || errors.As(err, &final) || attempt >= p.Attempts || ctx.Err() != nil {
			if ctx.Err() != nil && err != nil && !errors.Is(err, ctx.Err()) {
				return fmt.Errorf("%w; last attempt: %w", ctx.Err(), err)
			}
			return err
		}
		t := time.NewTimer(p.Delay(attempt, tmp.After))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w; last attempt: %w", ctx.Err(), err)
		case <-t.C:
		}
	}
}
