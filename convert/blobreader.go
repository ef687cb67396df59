package convert

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// streamRange is how much of a blob one request of a blobReader asks
// for. A blobReader holds at most three: one being read, one waiting,
// one arriving.
const streamRange = 4 << 20

// blobReader reads a blob front to back through its fetcher, one range
// ahead of the reader, and checks the blob's digest as it goes: the read
// that would return io.EOF returns an error wrapping ErrMismatch instead
// if the bytes were not the blob's. Close must be called.
type blobReader struct {
	desc     ocispec.Descriptor
	verifier digest.Verifier
	next     chan []byte
	errc     chan error // the fetching goroutine's outcome, once
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	cur      []byte
	read     int64
	err      error
	onRead   func(int64)
}

// newBlobReader starts reading the blob desc describes, whose size must
// already have been checked against its bound.
func newBlobReader(ctx context.Context, f fetcher.Fetcher, desc ocispec.Descriptor, onRead func(int64)) (*blobReader, error) {
	if err := checkSize(ctx, f, desc); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &blobReader{
		desc:     desc,
		verifier: desc.Digest.Verifier(),
		next:     make(chan []byte, 1),
		errc:     make(chan error, 1),
		cancel:   cancel,
		onRead:   onRead,
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(r.next)
		r.errc <- r.fetch(ctx, f)
	}()
	return r, nil
}

func (r *blobReader) fetch(ctx context.Context, f fetcher.Fetcher) error {
	for off := int64(0); off < r.desc.Size; {
		rg := fetcher.Range{Offset: off, Length: min(streamRange, r.desc.Size-off)}
		var got []byte
		err := f.Fetch(ctx, []fetcher.Range{rg}, func(_ fetcher.Range, data []byte) error {
			got = data
			return nil
		})
		if err == nil && int64(len(got)) != rg.Length {
			err = fmt.Errorf("fetcher returned %d bytes for range %v", len(got), rg)
		}
		if err != nil {
			return err
		}
		select {
		case r.next <- got:
		case <-ctx.Done():
			return ctx.Err()
		}
		off = rg.End()
	}
	return nil
}

func (r *blobReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for len(r.cur) == 0 {
		b, ok := <-r.next
		if !ok {
			r.err = <-r.errc
			if r.err == nil {
				r.err = io.EOF
				if !r.verifier.Verified() {
					r.err = fmt.Errorf("blob content does not have digest %s: %w", r.desc.Digest, ErrMismatch)
				}
			}
			return 0, r.err
		}
		r.cur = b
	}
	n := copy(p, r.cur)
	r.verifier.Write(p[:n])
	r.cur = r.cur[n:]
	r.read += int64(n)
	if r.onRead != nil {
		r.onRead(r.read)
	}
	return n, nil
}

// Close stops the fetching and waits for it.
func (r *blobReader) Close() error {
	r.cancel()
	for range r.next {
	}
	r.wg.Wait()
	return nil
}
