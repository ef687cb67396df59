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
// bandwidth. The pipe is a virtual clock: each slice of at most 32 KiB
// reserves its transmission time after everything reserved before it, and
// the writer sleeps until that slice's deadline before handing it to the
// socket. Deadlines are absolute, so oversleeping one slice does not slow
// the next (up to 2 ms of lateness is caught up); an idle link banks no
// credit, so nothing bursts above the bandwidth. Parallel requests
// therefore share the bandwidth instead of multiplying it, as they would
// on one real bottleneck link. Request bodies, headers and TCP slow start
// are not modelled.
//
// The same shaping serves two front ends: [Server], an in-process blob
// registry, and [Proxy], which puts the link in front of any real registry
// (for example Debian's docker-registry) so that both are measured the same
// way. Both count requests and response body bytes in [Stats].
package simregistry
