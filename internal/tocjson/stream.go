package tocjson

import (
	"hash"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"
)

// jsonStream is the TOC JSON of a member being inflated, shared between
// the goroutine inflating it and the scanner decoding it.
type Stream struct {
	mu   sync.Mutex
	cond sync.Cond
	data []byte // inflated so far; only ever appended to
	done bool   // data is complete, or err is set
	err  error
	sum  digest.Digest // of data, once it is complete
}

func NewStream() *Stream {
	st := &Stream{}
	st.cond.L = &st.mu
	return st
}

// fill reads the document from src and publishes it piece bytes at a
// time: size bytes, or, if size is negative, all src holds (the caller
// bounds src). h, if not nil, hashes what is published. It does not
// finish the stream.
func (st *Stream) Fill(src io.Reader, size int64, piece int, h hash.Hash) error {
	want := size
	if size < 0 {
		want = math.MaxInt64
	}
	// Grow with the data actually read rather than trusting a claimed
	// size for one big allocation.
	buf := make([]byte, 0, min(want, 1<<20))
	for int64(len(buf)) < want {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(want-int64(len(buf)), int64(cap(buf)))))
		}
		end := min(int64(cap(buf)), int64(len(buf)+piece), want)
		n, err := io.ReadFull(src, buf[len(buf):end])
		if h != nil {
			h.Write(buf[len(buf) : len(buf)+n])
		}
		buf = buf[:len(buf)+n]
		st.mu.Lock()
		st.data = buf
		st.mu.Unlock()
		st.cond.Broadcast()
		if err != nil {
			if size < 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
				return nil
			}
			return err
		}
	}
	return nil
}

// complete finishes the stream without error, the document's digest
// being sum.
func (st *Stream) Complete(sum digest.Digest) {
	st.mu.Lock()
	st.sum = sum
	st.mu.Unlock()
	st.Finish(nil)
}

func (st *Stream) Finish(err error) {
	st.mu.Lock()
	st.done, st.err = true, err
	st.mu.Unlock()
	st.cond.Broadcast()
}

// next waits until at least n bytes are inflated, or all are, and returns
// what is inflated.
func (st *Stream) Next(n int) []byte {
	st.mu.Lock()
	defer st.mu.Unlock()
	for len(st.data) < n && !st.done {
		st.cond.Wait()
	}
	return st.data
}

// result waits for the whole JSON and returns it with its digest.
func (st *Stream) Result() ([]byte, digest.Digest, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for !st.done {
		st.cond.Wait()
	}
	return st.data, st.sum, st.err
}

// streamPiece is how many bytes of JSON estargz.DecodeFrom inflates before
// handing them to the scanner, which waits for no more than this beyond
// what it needs.
const StreamPiece = 64 << 10
