package fetcher

import (
	"context"
	"fmt"
	"io"
)

// SequentialReader reads a blob from its start to its end through a
// Fetcher, piece by piece, fetching the next piece while the caller reads
// the current one: at most three pieces are held at once (one read, one
// waiting, one arriving). It checks no digest. Close must be called.
type SequentialReader struct {
	pieces chan []byte
	errc   chan error
	cancel context.CancelFunc
	done   chan struct{}
	cur    []byte
	err    error
}

// NewSequentialReader starts reading the first size bytes of the blob f
// serves, piece bytes a request (at least 1). The reads run until the
// blob is read, an error, ctx ends, or Close.
func NewSequentialReader(ctx context.Context, f Fetcher, size, piece int64) *SequentialReader {
	piece = max(piece, 1)
	ctx, cancel := context.WithCancel(ctx)
	s := &SequentialReader{pieces: make(chan []byte, 1), errc: make(chan error, 1), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.pieces)
		for off := int64(0); off < size; off += piece {
			r := Range{Offset: off, Length: min(piece, size-off)}
			var got []byte
			err := f.Fetch(ctx, []Range{r}, func(_ Range, data []byte) error {
				got = data
				return nil
			})
			if err == nil && int64(len(got)) != r.Length {
				err = fmt.Errorf("fetcher: range %v: %d bytes: %w", r, len(got), io.ErrUnexpectedEOF)
			}
			if err != nil {
				s.errc <- err
				return
			}
			select {
			case s.pieces <- got:
			case <-ctx.Done():
				s.errc <- ctx.Err()
				return
			}
		}
	}()
	return s
}

// Read reads the blob's next bytes; it returns io.EOF after size bytes,
// or the error that stopped the fetches.
func (s *SequentialReader) Read(p []byte) (int, error) {
	for len(s.cur) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		piece, ok := <-s.pieces
		if !ok {
			select {
			case s.err = <-s.errc:
			default:
				s.err = io.EOF
			}
			continue
		}
		s.cur = piece
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

// Close stops the fetches and waits for them.
func (s *SequentialReader) Close() error {
	s.cancel()
	<-s.done
	return nil
}
