// Package fetcher reads byte ranges of one immutable blob, from wherever
// the blob lives.
//
// A [Fetcher] takes a set of ranges and hands each one back whole, exactly
// as long as asked, or fails. Two implementations are provided:
//
//   - [FromReaderAt] serves ranges from an [io.ReaderAt] such as an
//     [os.File] or a [bytes.Reader].
//   - [NewHTTP] serves ranges of a blob in an OCI distribution registry
//     (or any server that answers HTTP range requests). It merges nearby
//     ranges with [Coalesce], asks for several at once with multi-range
//     requests, and falls back to parallel single ranges, or to reading
//     the wanted bytes from a whole-blob answer, for hosts that need it:
//     it sends one request to learn what a host does before it sends
//     more, and remembers what it learnt. It follows redirects without
//     carrying credentials to other hosts, answers bearer-token
//     (including OAuth2 identity tokens) and Basic auth challenges with
//     credentials given or found in a docker config.json or the
//     credential helpers it names, retries lost connections, 429 and 5xx
//     answers with jittered exponential backoff, and bounds each attempt
//     with a timeout. A fetcher made by package registry instead uses
//     the registry client's transport, which authenticates
//     ([WithAuthorizedTransport]), and shares what it learns of hosts'
//     range support with the client's other fetchers ([WithHostTable],
//     at most [MaxSharedHosts] hosts).
//
// Fetchers know nothing of layer formats and do not verify content: a
// server that flips bytes is caught by the digest checks of the caller
// (package reader). They never trust a response's lengths: memory use is
// bounded by the bytes asked for, whatever a server sends (plus a 64 KiB
// buffer per response being read), and of an unexpected answer's body at
// most 16 KiB is read, for the registry's error code and message (see
// [StatusError]). Errors wrap [ErrBlobUnknown]
// when the registry does not have the blob, [ErrUnauthorized] when it
// refuses the credentials, and [ErrRange] for ranges outside the blob.
//
// Both fetchers count requests, retries, failures, ranges, bytes and
// latency; Stats returns a snapshot and [WithObserver] reports each
// request as it finishes.
package fetcher
