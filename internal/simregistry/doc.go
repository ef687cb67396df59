// Package simregistry runs an OCI distribution registry on loopback that
// behaves like one across a real network: every request pays a round trip
// before its response starts, and every response body shares one bandwidth
// cap. Benchmarks and tests use it to measure lazy pulling against the
// physical limit of a link without a network.
//
// # Network model
//
// A [Link] has a round-trip time and a bandwidth. A request's first
// response byte reaches the client one RTT after the request was sent: the
// request spends RTT/2 on the way in and the response RTT/2 on the way
// out. On loopback both halves are invisible to the client except as their
// sum, so the model waits the whole RTT before the handler runs. Connection
// setup is free: the model is a warm keep-alive connection, as a puller
// that has already resolved the manifest holds.
//
// Response bodies then leave through one shared pipe of the link's
// bandwidth. A handler's writes go to its response's send buffer (1 MiB,
// as a TCP send buffer at least a bandwidth-delay product deep), and a
// sender drains that buffer onto the pipe. The pipe is a virtual clock:
// each slice of at most 32 KiB reserves its transmission time after
// everything reserved before it, and the sender sleeps until that slice's
// deadline before handing it to the socket. Deadlines are absolute, so
// oversleeping one slice does not slow the next: a sender with bytes still
// waiting catches up as long as its buffer could have kept the link busy,
// as the kernel would have, and any sender catches up 2 ms. An idle link
// banks no credit, so nothing bursts above the bandwidth. Parallel requests
// therefore share the bandwidth instead of multiplying it, as they would
// on one real bottleneck link, and many small writes (the parts of a
// multi-range answer) cost the link their bytes, not a sleep each. Request
// bodies, headers and TCP slow start are not modelled.
//
// The same shaping serves two front ends: [Server], an in-process blob
// registry, and [Proxy], which puts the link in front of any real registry
// (for example Debian's docker-registry) so that both are measured the same
// way. Both count requests and response body bytes in [Stats].
package simregistry
