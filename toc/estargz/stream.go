package estargz

import (
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/toc"

	"github.com/opencontainers/go-digest"
)

// DecodeFrom is Decode for a TOC member that r delivers
// piece by piece, as a download does. It inflates the member as its bytes
// arrive and decodes the JSON as it is inflated, on two goroutines, so
// that the TOC is ready soon after r's last byte instead of a whole
// decompression and decode later. It may leave the end of r unread. It
// returns the TOC JSON as well, unless the member itself could not be
// read; the results are those Decode gives for the same bytes.
func DecodeFrom(r io.Reader, tocOffset int64, opts ...toc.DecodeOption) (*toc.TOC, []byte, error) {
	return decodeEStargzFrom(r, tocOffset, toc.NewLimits(opts...), tocjson.StreamPiece)
}

// decodeEStargzFrom is DecodeFrom handing the scanner piece bytes
// at a time; tests make pieces tiny to stop the scanner everywhere.
func decodeEStargzFrom(r io.Reader, tocOffset int64, cfg toc.Limits, piece int) (*toc.TOC, []byte, error) {
	if tocOffset < 0 {
		return nil, nil, fmt.Errorf("toc: negative TOC offset %d: %w", tocOffset, toc.ErrInvalidTOC)
	}
	st := tocjson.NewStream()
	go inflate(st, r, cfg, piece)
	s := &tocjson.Scanner{Data: st.Next(1), MaxEntries: cfg.MaxEntries, Interned: make(map[string]string), More: st.Next}
	v, entries, ok := s.Document()
	version := &v
	data, sum, err := st.Result()
	if err != nil {
		return nil, nil, err
	}
	var decodeErr error
	if !ok || len(s.Data) != len(data) {
		// What the scan of the arriving document could not settle, a
		// scan of the whole document decides, as for one in memory.
		version, entries, decodeErr = tocjson.DecodeDocument(data, cfg.MaxEntries)
	}
	t, err := buildEStargzTOC(version, entries, decodeErr, sum, tocOffset, cfg)
	return t, data, err
}

// inflate reads the member from r and publishes to st its JSON piece bytes at a
// time, with the JSON's digest.
func inflate(st *tocjson.Stream, r io.Reader, cfg toc.Limits, piece int) {
	json, size, err := openEStargzTOCMember(r, cfg)
	if err != nil {
		st.Finish(err)
		return
	}
	h := sha256.New()
	if err := st.Fill(json, size, piece, h); err != nil {
		st.Finish(fmt.Errorf("toc: estargz TOC member: reading %d bytes of JSON: %w: %w", size, toc.ErrInvalidTOC, err))
		return
	}
	st.Complete(digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)))
}
