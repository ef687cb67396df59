package toc

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"
)

// DecodeEStargzFrom is DecodeEStargz for a TOC member that r delivers
// piece by piece, as a download does. It inflates the member as its bytes
// arrive and decodes the JSON as it is inflated, on two goroutines, so
// that the TOC is ready soon after r's last byte instead of a whole
// decompression and decode later. It may leave the end of r unread. It
// returns the TOC JSON as well, unless the member itself could not be
// read; the results are those DecodeEStargz gives for the same bytes.
func DecodeEStargzFrom(r io.Reader, tocOffset int64, opts ...DecodeOption) (*TOC, []byte, error) {
	return decodeEStargzFrom(r, tocOffset, newDecodeConfig(opts), streamPiece)
}

// streamPiece is how many bytes of JSON DecodeEStargzFrom inflates before
// handing them to the scanner, which waits for no more than this beyond
// what it needs.
const streamPiece = 64 << 10

// decodeEStargzFrom is DecodeEStargzFrom handing the scanner piece bytes
// at a time; tests make pieces tiny to stop the scanner everywhere.
func decodeEStargzFrom(r io.Reader, tocOffset int64, cfg decodeConfig, piece int) (*TOC, []byte, error) {
	if tocOffset < 0 {
		return nil, nil, fmt.Errorf("toc: negative TOC offset %d: %w", tocOffset, ErrInvalidTOC)
	}
	st := newJSONStream()
	go st.inflate(r, cfg, piece)
	s := &estargzScanner{data: st.next(1), maxEntries: cfg.maxEntries, interned: make(map[string]string), more: st.next}
	v, entries, ok := s.document()
	version := &v
	data, sum, err := st.result()
	if err != nil {
		return nil, nil, err
	}
	var decodeErr error
	if !ok || len(s.data) != len(data) {
		// What the scan of the arriving document could not settle, a
		// scan of the whole document decides, as for one in memory.
		version, entries, decodeErr = decodeEStargzDocument(data, cfg.maxEntries)
	}
	t, err := buildEStargzTOC(version, entries, decodeErr, sum, tocOffset, cfg)
	return t, data, err
}

// jsonStream is the TOC JSON of a member being inflated, shared between
// the goroutine inflating it and the scanner decoding it.
type jsonStream struct {
	mu   sync.Mutex
	cond sync.Cond
	data []byte // inflated so far; only ever appended to
	done bool   // data is complete, or err is set
	err  error
	sum  digest.Digest // of data, once it is complete
}

func newJSONStream() *jsonStream {
	st := &jsonStream{}
	st.cond.L = &st.mu
	return st
}

// inflate reads the member from r and publishes its JSON piece bytes at a
// time, with the JSON's digest.
func (st *jsonStream) inflate(r io.Reader, cfg decodeConfig, piece int) {
	json, size, err := openEStargzTOCMember(r, cfg)
	if err != nil {
		st.finish(err)
		return
	}
	h := sha256.New()
	if err := st.fill(json, size, piece, h); err != nil {
		st.finish(fmt.Errorf("toc: estargz TOC member: reading %d bytes of JSON: %w: %w", size, ErrInvalidTOC, err))
		return
	}
	st.mu.Lock()
	st.sum = digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
	st.mu.Unlock()
	st.finish(nil)
}

// fill reads the document from src and publishes it piece bytes at a
// time: size bytes, or, if size is negative, all src holds (the caller
// bounds src). h, if not nil, hashes what is published. It does not
// finish the stream.
func (st *jsonStream) fill(src io.Reader, size int64, piece int, h hash.Hash) error {
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

func (st *jsonStream) finish(err error) {
	st.mu.Lock()
	st.done, st.err = true, err
	st.mu.Unlock()
	st.cond.Broadcast()
}

// next waits until at least n bytes are inflated, or all are, and returns
// what is inflated.
func (st *jsonStream) next(n int) []byte {
	st.mu.Lock()
	defer st.mu.Unlock()
	for len(st.data) < n && !st.done {
		st.cond.Wait()
	}
	return st.data
}

// result waits for the whole JSON and returns it with its digest.
func (st *jsonStream) result() ([]byte, digest.Digest, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for !st.done {
		st.cond.Wait()
	}
	return st.data, st.sum, st.err
}
