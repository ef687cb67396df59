package toc

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/vbatts/tar-split/tar/storage"
)

// tarSplitEntry is one decoded tar-split record, as json.Unmarshal decodes
// it into a storage.Entry: name is what Entry.GetName returns, payload is
// nil for a null or absent payload. Its slices may alias the decoder's
// buffers and the line it was decoded from.
type tarSplitEntry struct {
	typ     int64 // storage.Type, an int, not yet checked
	name    []byte
	size    int64
	payload []byte
}

// tarSplitDecoder decodes tar-split records, one JSON line each. A
// hand-written scanner decodes the records as tar-split writes them
// without building a value per field, into buffers reused from record to
// record; whenever a line is anything it is not certain to decode exactly
// as encoding/json would (a syntax error, a duplicate or case-folded key,
// null where a number goes, a number with a fraction, an escape in a
// base64 value), the line is decoded by json.Unmarshal instead, so results
// and errors are always encoding/json's. The zero value is ready to use.
type tarSplitDecoder struct {
	scan    estargzScanner
	payload []byte // decoded payloads
	nameRaw []byte // decoded name_raw values
}

// Keys of a tar-split record, as storage.Entry spells them, indexed by
// the constants below.
var tarSplitKeys = []string{"type", "name", "name_raw", "size", "payload", "position"}

const (
	tsType = iota
	tsName
	tsNameRaw
	tsSize
	tsPayload
	tsPosition
)

// decode decodes line into e. The result is valid until the next call or
// until line changes.
func (d *tarSplitDecoder) decode(line []byte, e *tarSplitEntry) error {
	if d.fast(line, e) {
		return nil
	}
	return decodeTarSplitEntryJSON(line, e)
}

// decodeTarSplitEntryJSON is decode by encoding/json alone.
func decodeTarSplitEntryJSON(line []byte, e *tarSplitEntry) error {
	var se storage.Entry
	if err := json.Unmarshal(line, &se); err != nil {
		return err
	}
	*e = tarSplitEntry{typ: int64(se.Type), name: []byte(se.GetName()), size: se.Size, payload: se.Payload}
	return nil
}

// fast decodes line with the scanner, reporting false if it declined.
func (d *tarSplitDecoder) fast(line []byte, e *tarSplitEntry) bool {
	s := &d.scan
	s.data, s.pos = line, 0
	*e = tarSplitEntry{}
	var (
		seen          uint8
		name, nameRaw []byte
	)
	ok := s.object(tarSplitKeys, func(field int) bool {
		if seen&(1<<field) != 0 {
			return false // encoding/json keeps the last; leave duplicates to it
		}
		seen |= 1 << field
		var ok bool
		switch field {
		case tsType:
			e.typ, ok = s.integer(strconv.IntSize)
		case tsName:
			name, ok = s.stringBytes()
		case tsNameRaw:
			nameRaw, d.nameRaw, ok = s.base64Bytes(d.nameRaw)
		case tsSize:
			e.size, ok = s.integer(64)
		case tsPayload:
			e.payload, d.payload, ok = s.base64Bytes(d.payload)
		case tsPosition:
			_, ok = s.integer(strconv.IntSize)
		}
		return ok
	})
	s.skipSpace()
	if !ok || s.pos != len(line) {
		return false
	}
	e.name = name
	if len(nameRaw) > 0 {
		e.name = nameRaw
	}
	return true
}

// stringBytes reads a string value and returns its decoded bytes: the
// literal's own bytes when it is plain (no escapes, valid UTF-8), else
// what encoding/json decodes it to.
func (s *estargzScanner) stringBytes() ([]byte, bool) {
	start := s.pos
	raw, escaped, nonASCII, ok := s.rawString()
	if !ok {
		return nil, false
	}
	if escaped || nonASCII && !utf8.Valid(raw) {
		var v string
		if err := json.Unmarshal(s.data[start:s.pos], &v); err != nil {
			return nil, false
		}
		return []byte(v), true
	}
	return raw, true
}

// base64Bytes reads a []byte value as encoding/json decodes it: null is
// nil, a string is standard base64, decoded into buf (grown if need be,
// and returned for reuse). It declines strings with escapes: the base64
// alphabet has no backslash, quote, control or non-ASCII byte, so a
// literal that decodes is one encoding/json reads verbatim.
func (s *estargzScanner) base64Bytes(buf []byte) (value, newBuf []byte, ok bool) {
	switch s.peek() {
	case 'n':
		return nil, buf, s.literal("null")
	case '"':
	default:
		return nil, buf, false
	}
	end := bytes.IndexByte(s.data[s.pos+1:], '"')
	if end < 0 {
		return nil, buf, false
	}
	raw := s.data[s.pos+1 : s.pos+1+end]
	full := base64.StdEncoding.DecodedLen(len(raw))
	if cap(buf) < full || buf == nil {
		buf = make([]byte, max(full, 512))
	}
	n, err := base64.StdEncoding.Decode(buf[:cap(buf)], raw)
	// The decoder skips CR and LF, which a JSON string cannot hold raw.
	// Skipped, they would leave the output short of the length the
	// literal's size and padding promise (by at least 3 bytes: the rest
	// must still come in groups of 4).
	if err != nil || len(raw)%4 != 0 || n != full-base64Padding(raw) {
		return nil, buf, false
	}
	s.pos += 1 + end + 1
	return buf[:n], buf, true
}

// base64Padding counts the padding characters that end raw.
func base64Padding(raw []byte) int {
	n := 0
	for n < 2 && n < len(raw) && raw[len(raw)-1-n] == '=' {
		n++
	}
	return n
}
