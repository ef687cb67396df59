package fetcher

import (
	"context"
	"fmt"
)

// Range is the half-open byte range [Offset, Offset+Length) of a blob.
type Range struct {
	Offset int64
	Length int64
}

// End returns the offset just past the range.
func (r Range) End() int64 { return r.Offset + r.Length }

// String formats the range as an HTTP byte-range spec ("a-b", inclusive).
func (r Range) String() string { return fmt.Sprintf("%d-%d", r.Offset, r.End()-1) }

// Fetcher reads byte ranges of one immutable blob. Implementations are safe
// for concurrent use.
type Fetcher interface {
	// Size returns the blob's size in bytes.
	Size(ctx context.Context) (int64, error)

	// Fetch reads every range in ranges and calls fn once for each with
	// exactly that range's bytes. The ranges may be in any order and may
	// overlap; an implementation is free to merge them into fewer
	// requests. fn owns data and may keep it. fn may be called
	// concurrently for different ranges, and in any order; the first
	// error, from fn or from reading, stops the fetch and is returned.
	Fetch(ctx context.Context, ranges []Range, fn func(r Range, data []byte) error) error
}
