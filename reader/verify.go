package reader

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"strings"

	"github.com/lazylayer/lazylayer/internal/untrusted"
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
