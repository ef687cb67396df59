package fetcher

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a fetcher's counters since it was created.
type Stats struct {
	Requests int64         // requests sent to the source, retries included
	Retries  int64         // requests that were repeats of a failed one
	Failures int64         // requests that ended in an error
	Ranges   int64         // caller ranges delivered to Fetch callbacks
	Bytes    int64         // bytes received from the source, merged gaps included
	Latency  time.Duration // time spent in requests, summed over all of them
}

// RequestInfo describes one finished request to a source; an observer
// set with WithObserver receives one per request.
type RequestInfo struct {
	Spans   []Range       // the byte ranges asked for; nil for a request of the size
	Attempt int           // 1 for the first try, 2 for the first retry, ...
	Status  int           // HTTP status code; 0 for other sources or when none arrived
	Bytes   int64         // bytes received
	Latency time.Duration // from sending the request to finishing its body
	Err     error         // why the request failed; nil on success
}

// recorder keeps the statistics every fetcher of this package offers. It
// is embedded, so its Stats method is promoted to the fetcher.
type recorder struct {
	requests, retries, failures, ranges, bytes, latency atomic.Int64
	observer                                            func(RequestInfo)
}

// Stats returns a snapshot of the fetcher's counters. It is safe to call
// concurrently with fetches.
func (c *recorder) Stats() Stats {
	return Stats{
		Requests: c.requests.Load(),
		Retries:  c.retries.Load(),
		Failures: c.failures.Load(),
		Ranges:   c.ranges.Load(),
		Bytes:    c.bytes.Load(),
		Latency:  time.Duration(c.latency.Load()),
	}
}

func (c *recorder) request(info RequestInfo) {
	c.requests.Add(1)
	if info.Attempt > 1 {
		c.retries.Add(1)
	}
	if info.Err != nil {
		c.failures.Add(1)
	}
	c.bytes.Add(info.Bytes)
	c.latency.Add(int64(info.Latency))
	if c.observer != nil {
		c.observer(info)
	}
}

func (c *recorder) delivered(n int) { c.ranges.Add(int64(n)) }
