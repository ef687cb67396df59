package reader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"runtime"
	"strings"

	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

const (
	// pipelineMin is the least chunk size that readChunk hashes on a
	// second goroutine while the rest of the chunk decompresses; below
	// it, handing pieces over costs more than it saves.
	pipelineMin = 256 << 10
	// pipelinePiece is how many decompressed bytes readChunk hands to
	// the hashing goroutine at a time: small enough to be hashed while
	// still in the CPU's cache, large enough that the hand-offs are few.
	pipelinePiece = 64 << 10
)

// readChunk fills dst with a chunk's bytes and checks them against want.
// fill(lo, hi) must place the chunk's bytes lo to hi in dst[lo:hi], and
// is called in order. err is fill's error; mismatch reports bytes that do
// not match want. Decompressing costs several times what hashing does,
// so a large chunk is hashed piece by piece on a second goroutine as it
// decompresses, and a reader waiting for it waits little longer than the
// decompression alone.
func readChunk(dst []byte, want digest.Digest, fill func(lo, hi int) error) (mismatch, err error) {
	if !isSHA256(want) || len(dst) < pipelineMin || runtime.GOMAXPROCS(0) == 1 {
		if err := fill(0, len(dst)); err != nil {
			return nil, err
		}
		return verify(want, dst), nil
	}
	h := sha256.New()
	pieces := make(chan []byte, (len(dst)+pipelinePiece-1)/pipelinePiece)
	hashed := make(chan struct{})
	go func() {
		for p := range pieces {
			h.Write(p)
		}
		close(hashed)
	}()
	for lo := 0; lo < len(dst) && err == nil; lo += pipelinePiece {
		hi := min(lo+pipelinePiece, len(dst))
		if err = fill(lo, hi); err == nil {
			pieces <- dst[lo:hi]
		}
	}
	close(pieces)
	<-hashed
	if err != nil {
		return nil, err
	}
	return checkSum(want, h.Sum(nil)), nil
}

// zeroPage holds zeros for reads of chunks of zeros to copy. Nothing
// writes it.
var zeroPage [64 << 10]byte

// zeroKey identifies a run of zeros and the digest an index gives it.
type zeroKey struct {
	digest digest.Digest
	size   int64
}

// checkZeros checks want, the digest an index gives a chunk of size
// zeros, if any, without building the chunk. A layer remembers the
// outcome, so that it hashes each run of zeros once, however often it is
// read; the hash (about 1.7 GB/s) stops when ctx is done.
func (l *Layer) checkZeros(ctx context.Context, want digest.Digest, size int64) error {
	if want == "" {
		return nil
	}
	key := zeroKey{want, size}
	if v, ok := l.zeroSums.Load(key); ok {
		err, _ := v.(error)
		return err
	}
	if err := want.Validate(); err != nil {
		return fmt.Errorf("%w: invalid digest %q: %v", ErrChunkDigest, untrusted.Short(string(want)), err)
	}
	h := want.Algorithm().Hash()
	for left, n := size, 0; left > 0; left, n = left-int64(len(zeroPage)), n+1 {
		if n%256 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		h.Write(zeroPage[:min(left, int64(len(zeroPage)))])
	}
	var err error
	if digest.NewDigestFromBytes(want.Algorithm(), h.Sum(nil)) != want {
		err = fmt.Errorf("%w: %d zero bytes do not match %s", ErrChunkDigest, size, want)
	}
	l.zeroSums.Store(key, err)
	return err
}

// isSHA256 reports whether d is a sha256 digest, the only algorithm the
// formats use.
func isSHA256(d digest.Digest) bool {
	alg, _, _ := strings.Cut(string(d), ":")
	return alg == string(digest.SHA256)
}

// verify checks data against want. sha256 takes a fast path that skips
// go-digest's regexp checks.
func verify(want digest.Digest, data []byte) error {
	if isSHA256(want) {
		sum := sha256.Sum256(data)
		return checkSum(want, sum[:])
	}
	if err := want.Validate(); err != nil {
		return fmt.Errorf("%w: invalid digest %q: %v", ErrChunkDigest, untrusted.Short(string(want)), err)
	}
	v := want.Verifier()
	v.Write(data)
	if !v.Verified() {
		return fmt.Errorf("%w: bytes do not match %s", ErrChunkDigest, want)
	}
	return nil
}

// checkSum compares a sha256 sum with want, a sha256 digest.
func checkSum(want digest.Digest, sum []byte) error {
	// go-digest's accessors panic on a digest without ':'; the index is
	// untrusted, so split it here.
	_, encoded, _ := strings.Cut(string(want), ":")
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], sum)
	if encoded != string(hexSum[:]) {
		return fmt.Errorf("%w: bytes do not match %s", ErrChunkDigest, want)
	}
	return nil
}

// wholeDigest reports whether reads of e check its whole content against
// e.Digest as they go (see fileSum): it has a digest and more than one
// chunk. A file of one chunk has the chunk's digest, which Open checked.
func wholeDigest(e *toc.Entry) bool {
	return e.Digest != "" && len(e.Chunks) > 1
}

// A fileSum checks a file's whole content against its digest as reads
// return it, from the start and in order: it hashes each read's bytes
// that continue those hashed before, and when they complete the file,
// compares the sum with the digest before the read returns them. The
// layer remembers the outcome, so that a file is hashed whole at most
// once, and once it fails, every read of it fails. The zero value is
// ready for use.
type fileSum struct {
	h    hash.Hash // nil until the first byte
	next int64     // the file's first next bytes are hashed
	done bool      // the digest was checked, here or by another read
}

// add takes p, the bytes of e at off that a read is about to return. It
// returns an error matching ErrChunkDigest if they complete a content
// that does not match e.Digest, or if an earlier read found so; the read
// must then fail instead.
func (s *fileSum) add(l *Layer, e *toc.Entry, p []byte, off int64) error {
	if s.done || !wholeDigest(e) || off > s.next || off+int64(len(p)) <= s.next {
		return nil
	}
	if s.h == nil {
		if v, checked := l.fileSums.Load(e); checked {
			s.done = true
			err, _ := v.(error)
			return err
		}
		if err := e.Digest.Validate(); err != nil {
			s.done = true
			err = fmt.Errorf("%w: invalid file digest %q: %v", ErrChunkDigest, untrusted.Short(string(e.Digest)), err)
			l.fileSums.Store(e, err)
			return err
		}
		s.h = e.Digest.Algorithm().Hash()
	}
	s.h.Write(p[s.next-off:])
	if s.next = off + int64(len(p)); s.next < e.Size {
		return nil
	}
	var err error
	if digest.NewDigestFromBytes(e.Digest.Algorithm(), s.h.Sum(nil)) != e.Digest {
		err = fmt.Errorf("%w: file content does not match its digest %s", ErrChunkDigest, e.Digest)
	}
	s.h, s.done = nil, true
	l.fileSums.Store(e, err)
	return err
}

// fileErr returns the error a read of e found checking its whole digest,
// if any: no read of it may return bytes then.
func (l *Layer) fileErr(e *toc.Entry) error {
	if !wholeDigest(e) {
		return nil
	}
	v, _ := l.fileSums.Load(e)
	err, _ := v.(error)
	return err
}

// checkFileDigest checks, at Open, the digest of a regular file whose
// content one chunk holds, or none: it must be the chunk's, or that of no
// bytes, so that reads verify the file whole by verifying its chunk.
func checkFileDigest(e *toc.Entry) error {
	switch {
	case e.Digest == "":
		return nil
	case len(e.Chunks) == 0:
		if err := verify(e.Digest, nil); err != nil {
			return fmt.Errorf("empty file's digest %q: %w: %w", untrusted.Short(string(e.Digest)), ErrCorrupt, err)
		}
	case len(e.Chunks) == 1:
		if c := e.Chunks[0].Digest; c != "" && c != e.Digest {
			return fmt.Errorf("file digest %q is not its one chunk's %q: %w",
				untrusted.Short(string(e.Digest)), untrusted.Short(string(c)), ErrCorrupt)
		}
	}
	return nil
}
