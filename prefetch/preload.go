package prefetch

import (
	"context"
	"fmt"
	"sync"

	"github.com/lazylayer/lazylayer/fetcher"
)

// Preloading sizes: the first piece of a preloaded region is
// firstPiece bytes, each next one twice the one before up to maxPiece,
// with at most piecesInFlight requested at once. Small first pieces let
// their consumer start early; later ones are requested while earlier
// ones still stream, so their round trips cost no time.
const (
	firstPiece     = 256 << 10
	maxPiece       = 2 << 20
	piecesInFlight = 4
)

// A Preloader is a fetcher.Fetcher that starts fetching one region of a
// blob before anyone asks for it, and serves requests inside the region
// from it as soon as the pieces they need have arrived. Other requests go
// to the underlying fetcher.
//
// It lets a reader that knows where a layer's prioritised region ends
// (an eStargz landmark, published with the layer as a hint) fetch that
// region in the same round trip as the layer's footer and index, instead
// of one round trip after decoding them:
//
//	p := prefetch.Preload(ctx, f, fetcher.Range{Offset: 0, Length: prefetchEnd})
//	defer p.Close()
//	layer, err := reader.Open(ctx, p, reader.WithCache(c))
//
// The region is fetched in pieces of growing size, a few at a time, so
// that its consumer can decompress the first pieces while the rest
// arrive. A Preloader is safe for concurrent use; Close stops it.
type Preloader struct {
	f      fetcher.Fetcher
	region fetcher.Range
	pieces []*piece

	cancel context.CancelFunc
	wg     sync.WaitGroup // the preload's goroutines
}

// piece is one request of the preloaded region.
type piece struct {
	fetcher.Range
	done chan struct{}
	data []byte
	err  error
}

// Preload starts fetching region of the blob f serves, until it has it
// all, ctx is done or the Preloader is closed, and returns the Preloader
// that serves it.
func Preload(ctx context.Context, f fetcher.Fetcher, region fetcher.Range) *Preloader {
	p := &Preloader{f: f, region: region}
	ctx, p.cancel = context.WithCancel(ctx)
	size := int64(firstPiece)
	for off := region.Offset; off < region.End(); {
		n := min(size, region.End()-off)
		p.pieces = append(p.pieces, &piece{Range: fetcher.Range{Offset: off, Length: n}, done: make(chan struct{})})
		off += n
		size = min(2*size, maxPiece)
	}
	p.wg.Go(func() { p.fetch(ctx) })
	return p
}

// Close stops the preload and returns once none of its requests is in
// progress. Fetch calls still go to the underlying fetcher afterwards,
// and pieces that had arrived are still served.
func (p *Preloader) Close() error {
	p.cancel()
	p.wg.Wait()
	return nil
}

// fetch requests the pieces in order, piecesInFlight at a time.
func (p *Preloader) fetch(ctx context.Context) {
	sem := make(chan struct{}, piecesInFlight)
	for _, pc := range p.pieces {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if err := ctx.Err(); err != nil {
			pc.err = err
			close(pc.done)
			continue
		}
		p.wg.Go(func() {
			defer func() { <-sem }()
			pc.err = p.f.Fetch(ctx, []fetcher.Range{pc.Range}, func(r fetcher.Range, data []byte) error {
				if r != pc.Range || int64(len(data)) != r.Length {
					return fmt.Errorf("prefetch: preload: fetcher returned %d bytes at %d for range %v", len(data), r.Offset, pc.Range)
				}
				pc.data = data
				return nil
			})
			if pc.err == nil && pc.data == nil {
				pc.err = fmt.Errorf("prefetch: preload: fetcher skipped range %v", pc.Range)
			}
			close(pc.done)
		})
	}
}

// Size returns the blob's size, from the underlying fetcher.
func (p *Preloader) Size(ctx context.Context) (int64, error) { return p.f.Size(ctx) }

// Fetch serves each range that lies inside the preloaded region once its
// pieces have arrived, each as soon as it can, and meanwhile fetches the
// others through the underlying fetcher; ranges whose pieces failed are
// fetched through it afterwards. fn may be called concurrently.
func (p *Preloader) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	var rest []fetcher.Range
	var inside []fetcher.Range
	for _, r := range ranges {
		if r.Length > 0 && r.Offset >= p.region.Offset && r.End() <= p.region.End() {
			inside = append(inside, r)
		} else {
			rest = append(rest, r)
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	if len(rest) > 0 {
		// Not after the region: a caller asking for the blob's tail
		// and some of the region at once pays one round trip, not two.
		wg.Go(func() {
			if err := p.f.Fetch(ctx, rest, fn); err != nil {
				cancel(err)
			}
		})
	}
	var mu sync.Mutex
	var failed []fetcher.Range
	for _, r := range inside {
		wg.Go(func() {
			data, ok := p.serve(ctx, r)
			if !ok {
				mu.Lock()
				failed = append(failed, r)
				mu.Unlock()
				return
			}
			if err := fn(r, data); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if len(failed) == 0 {
		return nil
	}
	return p.f.Fetch(ctx, failed, fn)
}

// serve waits for the pieces covering r and returns a copy of its bytes;
// ok is false when a piece failed or ctx is done.
func (p *Preloader) serve(ctx context.Context, r fetcher.Range) (data []byte, ok bool) {
	data = make([]byte, r.Length)
	for _, pc := range p.pieces {
		if pc.End() <= r.Offset || pc.Offset >= r.End() {
			continue
		}
		select {
		case <-pc.done:
		case <-ctx.Done():
			return nil, false
		}
		if pc.err != nil {
			return nil, false
		}
		from, to := max(r.Offset, pc.Offset), min(r.End(), pc.End())
		copy(data[from-r.Offset:], pc.data[from-pc.Offset:to-pc.Offset])
	}
	return data, true
}
