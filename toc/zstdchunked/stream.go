package zstdchunked

import (
	"errors"
	"fmt"
	"io"

	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/toc"

	"github.com/opencontainers/go-digest"
)

// DecodeFrom is Decode for a compressed TOC (the
// payload of the TOC frame located by f) that r delivers piece by piece,
// as a download does. It decompresses the TOC as its bytes arrive and
// decodes the JSON as it is decompressed, on two goroutines, so that the
// TOC is ready soon after r's last byte. It reads no more than
// f.TOCLength bytes of r and hashes all it reads: the TOC's Digest is the
// digest of those bytes, as for Decode, and the results are
// those Decode gives for the same bytes.
func DecodeFrom(r io.Reader, f toc.Footer, opts ...toc.DecodeOption) (*toc.TOC, digest.Digest, error) {
	return decodeZstdChunkedFrom(r, f, toc.NewLimits(opts...), tocjson.StreamPiece)
}

// decodeZstdChunkedFrom is DecodeFrom handing the scanner
// piece bytes at a time; tests make pieces tiny to stop the scanner
// everywhere.
func decodeZstdChunkedFrom(r io.Reader, f toc.Footer, cfg toc.Limits, piece int) (*toc.TOC, digest.Digest, error) {
	if f.TOCUncompressedLength > cfg.MaxTOCSize {
		return nil, "", fmt.Errorf("toc: zstd:chunked TOC of %d bytes, limit %d: %w", f.TOCUncompressedLength, cfg.MaxTOCSize, toc.ErrTOCTooLarge)
	}
	if f.TOCLength > 0 && f.TOCUncompressedLength > f.TOCLength*maxZstdRatio {
		return nil, "", fmt.Errorf("toc: zstd:chunked TOC of %d bytes cannot come from %d compressed bytes: %w", f.TOCUncompressedLength, f.TOCLength, toc.ErrInvalidTOC)
	}
	digester := digest.Canonical.Digester()
	compressed := io.TeeReader(io.LimitReader(r, max(f.TOCLength, 0)), digester.Hash())
	st := tocjson.NewStream()
	go func() { st.Finish(decompress(st, compressed, f.TOCUncompressedLength, cfg.MaxTOCSize, piece)) }()
	s := &zstdChunkedScanner{Scanner: tocjson.Scanner{Data: st.Next(1), MaxEntries: cfg.MaxEntries, Interned: make(map[string]string), More: st.Next}}
	doc, ok := s.document()
	data, _, err := st.Result()
	if err != nil {
		return nil, "", err
	}
	t, tarSplitDigest, err := unmarshalZstdChunked(data, f.TOCOffset, cfg, func(data []byte, maxEntries int) (zstdChunkedDocument, error) {
		if ok && len(s.Data) == len(data) {
			return doc, nil
		}
		// What the scan of the arriving document could not settle, a
		// scan of the whole document decides, as for one in memory.
		return decodeZstdChunkedDocument(data, maxEntries)
	})
	if err != nil {
		return nil, "", err
	}
	t.Digest = digester.Digest()
	return t, tarSplitDigest, nil
}

// decompress decompresses a TOC from compressed and publishes it to st piece
// bytes at a time. length is the TOC's length as the footer or annotation
// records it, 0 if unknown; limit bounds a TOC of unknown length. It
// returns once all of compressed is read, so that whoever hashes it has
// hashed everything; the caller finishes the stream.
func decompress(st *tocjson.Stream, compressed io.Reader, length, limit int64, piece int) error {
	zr, err := newZstdReader(compressed, limit)
	if err != nil {
		return fmt.Errorf("toc: zstd:chunked TOC: %w", err)
	}
	defer zr.Close()
	want := int64(-1)
	src := io.Reader(zr)
	if length > 0 {
		want = length
	} else {
		src = io.LimitReader(zr, limit+1)
	}
	if err := st.Fill(src, want, piece, nil); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("toc: zstd:chunked TOC is shorter than the %d bytes the footer says: %w", length, toc.ErrInvalidTOC)
		}
		return fmt.Errorf("toc: zstd:chunked TOC: decompressing: %w: %w", toc.ErrInvalidTOC, err)
	}
	got := int64(len(st.Next(0)))
	switch {
	case length <= 0 && got > limit:
		return fmt.Errorf("toc: zstd:chunked TOC exceeds the %d-byte limit: %w", limit, toc.ErrTOCTooLarge)
	case length > 0:
		// Nothing may follow the length the footer says.
		var extra [1]byte
		n, err := zr.Read(extra[:])
		if n > 0 {
			return fmt.Errorf("toc: zstd:chunked TOC exceeds the %d bytes the footer says: %w", length, toc.ErrInvalidTOC)
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("toc: zstd:chunked TOC: decompressing: %w: %w", toc.ErrInvalidTOC, err)
		}
	}
	if _, err := io.Copy(io.Discard, compressed); err != nil {
		return fmt.Errorf("toc: zstd:chunked TOC: reading: %w", err)
	}
	return nil
}
