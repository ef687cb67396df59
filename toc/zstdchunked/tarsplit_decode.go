package zstdchunked

import (
	"encoding/json"
	"strconv"

	"github.com/lazylayer/lazylayer/internal/tocjson"

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
	scan    tocjson.Scanner
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
	s.Data, s.Pos = line, 0
	*e = tarSplitEntry{}
	var (
		seen          uint8
		name, nameRaw []byte
	)
	ok := s.Object(tarSplitKeys, func(field int) bool {
		if seen&(1<<field) != 0 {
			return false // encoding/json keeps the last; leave duplicates to it
		}
		seen |= 1 << field
		var ok bool
		switch field {
		case tsType:
			e.typ, ok = s.Integer(strconv.IntSize)
		case tsName:
			name, ok = s.StringBytes()
		case tsNameRaw:
			nameRaw, d.nameRaw, ok = s.Base64Bytes(d.nameRaw)
		case tsSize:
			e.size, ok = s.Integer(64)
		case tsPayload:
			e.payload, d.payload, ok = s.Base64Bytes(d.payload)
		case tsPosition:
			_, ok = s.Integer(strconv.IntSize)
		}
		return ok
	})
	s.SkipSpace()
	if !ok || s.Pos != len(line) {
		return false
	}
	e.name = name
	if len(nameRaw) > 0 {
		e.name = nameRaw
	}
	return true
}
