package fetcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// maxRetryAfter caps how long a server's Retry-After can make us wait.
const maxRetryAfter = 30 * time.Second

// temporaryError marks a failure worth retrying: a lost connection, a
// short body, a timed-out attempt, 429 or most 5xx statuses.
type temporaryError struct {
	err   error
	after time.Duration // the server's Retry-After; 0 if none
}

func (e *temporaryError) Error() string { return e.err.Error() }
func (e *temporaryError) Unwrap() error { return e.err }

func retryable(err error, after time.Duration) error { return &temporaryError{err: err, after: after} }

// statusRetry marks err retryable when resp's status says trying again may
// help, honouring Retry-After.
func statusRetry(resp *http.Response, err error) error {
	switch c := resp.StatusCode; {
	case c == http.StatusTooManyRequests, c == http.StatusRequestTimeout,
		c >= 500 && c != http.StatusNotImplemented && c != http.StatusHTTPVersionNotSupported:
		return retryable(err, parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()))
	}
	return err
}

// parseRetryAfter reads delay-seconds or an HTTP date; junk means no hint.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return min(time.Duration(secs)*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return 0
}

// retryPolicy bounds attempts and spaces them with exponential backoff
// and jitter.
type retryPolicy struct {
	attempts  int
	baseDelay time.Duration
	maxDelay  time.Duration
}

// delay returns how long to wait before attempt+1: half of the
// exponential step plus a random part of the other half, at least the
// server's Retry-After.
func (p retryPolicy) delay(attempt int, retryAfter time.Duration) time.Duration {
	d := p.maxDelay
	if attempt < 32 && p.baseDelay<<(attempt-1) < p.maxDelay && p.baseDelay<<(attempt-1) > 0 {
		d = p.baseDelay << (attempt - 1)
	}
	if d > 1 {
		d = d/2 + rand.N(d/2)
	}
	return max(d, retryAfter)
}

// do runs op until it succeeds, fails permanently, the attempts run out or
// ctx ends. op receives the attempt number, starting at 1.
func (p retryPolicy) do(ctx context.Context, op func(attempt int) error) error {
	for attempt := 1; ; attempt++ {
		err := op(attempt)
		var tmp *temporaryError
		if err == nil || !errors.As(err, &tmp) || attempt >= p.attempts || ctx.Err() != nil {
			if ctx.Err() != nil && err != nil && !errors.Is(err, ctx.Err()) {
				return fmt.Errorf("%w; last attempt: %w", ctx.Err(), err)
			}
			return err
		}
		t := time.NewTimer(p.delay(attempt, tmp.after))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w; last attempt: %w", ctx.Err(), err)
		case <-t.C:
		}
	}
}
