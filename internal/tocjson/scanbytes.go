package tocjson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"unicode/utf8"
)

// stringBytes reads a string value and returns its decoded bytes: the
// literal's own bytes when it is plain (no escapes, valid UTF-8), else
// what encoding/json decodes it to.
func (s *Scanner) StringBytes() ([]byte, bool) {
	start := s.Pos
	raw, escaped, nonASCII, ok := s.RawString()
	if !ok {
		return nil, false
	}
	if escaped || nonASCII && !utf8.Valid(raw) {
		var v string
		if err := json.Unmarshal(s.Data[start:s.Pos], &v); err != nil {
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
func (s *Scanner) Base64Bytes(buf []byte) (value, newBuf []byte, ok bool) {
	switch s.Peek() {
	case 'n':
		return nil, buf, s.Literal("null")
	case '"':
	default:
		return nil, buf, false
	}
	end := bytes.IndexByte(s.Data[s.Pos+1:], '"')
	if end < 0 {
		return nil, buf, false
	}
	raw := s.Data[s.Pos+1 : s.Pos+1+end]
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
	s.Pos += 1 + end + 1
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
