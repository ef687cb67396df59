package toc

import (
	"crypto/sha256"
	"fmt"
	"io"

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

// decodeEStargzFrom is DecodeEStargzFrom handing the scanner piece bytes
// at a time; tests make pieces tiny to stop the scanner everywhere.
func decodeEStargzFrom(r io.Reader, tocOffset int64, cfg decodeConfig, piece int) (*TOC, []byte, error) {
	if tocOffset < 0 {
		return nil, nil, fmt.Errorf("toc: negative TOC offset %d: %w", tocOffset, ErrInvalidTOC)
	}
	st := newJSONStream()
	go inflate(st, r, cfg, piece)
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

// inflate reads the member from r and publishes to st its JSON piece bytes at a
// time, with the JSON's digest.
func inflate(st *jsonStream, r io.Reader, cfg decodeConfig, piece int) {
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
	st.complete(digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)))
}
