package reader

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestReadChunk(t *testing.T) {
	// Sizes below and above pipelineMin take both paths.
	for _, size := range []int{1000, pipelineMin, 3*pipelinePiece + pipelineMin + 7} {
		content := pseudoRandom(size, 3)
		good := digest.FromBytes(content)
		bad := digest.FromBytes(content[1:])
		for _, tc := range []struct {
			name         string
			src          []byte
			want         digest.Digest
			mismatch, ok bool
		}{
			{"good", content, good, false, true},
			{"mismatch", content, bad, true, true},
			{"sha512", content, digest.SHA512.FromBytes(content), false, true},
			{"truncated", content[:size-1], good, false, false},
		} {
			dst := make([]byte, size)
			mismatch, err := readChunk(dst, tc.want, readerFill(bytes.NewReader(tc.src), dst))
			if tc.ok != (err == nil) {
				t.Errorf("%d bytes, %s: error %v", size, tc.name, err)
			}
			if tc.mismatch != (mismatch != nil) || mismatch != nil && !errors.Is(mismatch, ErrChunkDigest) {
				t.Errorf("%d bytes, %s: mismatch %v", size, tc.name, mismatch)
			}
			if tc.ok && !bytes.Equal(dst, content) {
				t.Errorf("%d bytes, %s: wrong bytes read", size, tc.name)
			}
		}
	}
}

// readerFill fills dst from r, as readChunk asks.
func readerFill(r io.Reader, dst []byte) func(lo, hi int) error {
	return func(lo, hi int) error {
		_, err := io.ReadFull(r, dst[lo:hi])
		return err
	}
}

// failingReader returns its bytes, then err.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReadChunkFillError(t *testing.T) {
	content := pseudoRandom(2*pipelineMin, 4)
	boom := errors.New("boom")
	dst := make([]byte, len(content))
	_, err := readChunk(dst, digest.FromBytes(content), readerFill(&failingReader{content[:pipelineMin+1], boom}, dst))
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want the decompressor's", err)
	}
}
