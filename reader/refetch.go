package reader

import (
	"context"
	"errors"

	"github.com/lazylayer/lazylayer/fetcher"
)

// loadFrameRefetching is loadFrame, fetching the frame a second time, on
// its own, when the bytes that arrived were damaged: a bit flipped on the
// way, a body cut short, a response for another range. Such faults are
// usually transient and invisible to the fetcher, which cannot check
// what it delivers; the reader can, against the index. A frame is
// refetched once only, so a blob that is really corrupt costs one more
// request before its error.
func (l *Layer) loadFrameRefetching(ctx context.Context, ref chunkRef, siblings bool, src frameSource) (frameResult, error) {
	res, err := l.loadFrame(ctx, ref, siblings, src)
	failure := err
	if err == nil {
		c := l.chunk(ref)
		failure = res[span{c.InnerOffset, c.Size, l.chunkDigest(ref)}].err
	}
	if failure == nil || !damaged(failure) || ctx.Err() != nil {
		return res, err
	}
	return l.loadFrame(ctx, ref, siblings, l.fetchFrame)
}

// damaged reports whether err says that fetched bytes were wrong, as
// opposed to missing or refused.
func damaged(err error) bool {
	return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrChunkDigest) ||
		errors.Is(err, fetcher.ErrBadContentRange) || errors.Is(err, fetcher.ErrBadResponse)
}
