package zstdchunked

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/lazylayer/lazylayer/internal/tocjson"
)

// zstdChunkedDocument is the zstd:chunked TOC document as decoded: the
// version is nil when absent.
type zstdChunkedDocument struct {
	Version        *int                `json:"version"`
	Entries        []*zstdChunkedEntry `json:"entries"`
	TarSplitDigest string              `json:"tarSplitDigest"`
}

// decodeZstdChunkedDocument parses zstd:chunked TOC JSON exactly as
// json.Unmarshal into a zstdChunkedDocument does, several times faster: a
// scanner decodes the schema as writers produce it and leaves anything
// else (see decodeEStargzDocument) to encoding/json. Timestamps in the
// form writers use, "2006-01-02T15:04:05.999999999Z", are parsed by hand,
// others by time.Time.UnmarshalJSON as encoding/json would. As for
// eStargz, the scanner stops with errTooManyEntries at entry maxEntries+1.
func decodeZstdChunkedDocument(data []byte, maxEntries int) (zstdChunkedDocument, error) {
	s := &zstdChunkedScanner{Scanner: tocjson.Scanner{Data: data, MaxEntries: maxEntries, Interned: make(map[string]string)}}
	if doc, ok := s.document(); ok {
		return doc, nil
	}
	if s.TooMany {
		return zstdChunkedDocument{}, tocjson.ErrTooManyEntries
	}
	return decodeZstdChunkedDocumentJSON(data, maxEntries)
}

// decodeZstdChunkedDocumentJSON is decodeZstdChunkedDocument by
// encoding/json alone, which leaves the entry limit to the caller.
func decodeZstdChunkedDocumentJSON(data []byte, _ int) (zstdChunkedDocument, error) {
	var doc zstdChunkedDocument
	err := json.Unmarshal(data, &doc)
	return doc, err
}

// Keys of the TOC document and of an entry, as zstdChunkedDocument and
// zstdChunkedEntry spell them, indexed by the constants below.
var (
	zstdChunkedDocumentKeys = []string{"version", "entries", "tarSplitDigest"}
	zstdChunkedEntryKeys    = []string{
		"type", "name", "linkName", "mode", "size", "uid", "gid", "modtime", "accesstime", "changetime",
		"devMajor", "devMinor", "xattrs", "digest", "offset", "endOffset", "chunkSize", "chunkOffset",
		"chunkDigest", "chunkType", "innerOffset", "userName", "groupName",
	}
)

const (
	zcType = iota
	zcName
	zcLinkName
	zcMode
	zcSize
	zcUID
	zcGID
	zcModTime
	zcAccessTime
	zcChangeTime
	zcDevMajor
	zcDevMinor
	zcXattrs
	zcDigest
	zcOffset
	zcEndOffset
	zcChunkSize
	zcChunkOffset
	zcChunkDigest
	zcChunkType
	zcInnerOffset
	zcUserName
	zcGroupName
)

// zstdChunkedScanner reads zstd:chunked TOC JSON with the eStargz
// scanner's primitives.
type zstdChunkedScanner struct {
	tocjson.Scanner
	block tocjson.Slab[zstdChunkedEntry]
	times tocjson.Slab[time.Time]
}

func (s *zstdChunkedScanner) document() (doc zstdChunkedDocument, ok bool) {
	var seen [3]bool
	ok = s.Object(zstdChunkedDocumentKeys, func(field int) bool {
		if seen[field] {
			return false
		}
		seen[field] = true
		var valid bool
		switch field {
		case 0:
			var v int64
			v, valid = s.Integer(strconv.IntSize)
			version := int(v)
			doc.Version = &version
		case 1:
			doc.Entries, valid = s.entries()
		case 2:
			doc.TarSplitDigest, valid = s.Str(false)
		}
		return valid
	})
	s.SkipSpace()
	return doc, ok && s.Pos == len(s.Data)
}

func (s *zstdChunkedScanner) entries() ([]*zstdChunkedEntry, bool) {
	return tocjson.ScanEntries(&s.Scanner, &s.block, s.entry)
}

func (s *zstdChunkedScanner) entry(je *zstdChunkedEntry) bool {
	var seen uint32
	return s.Object(zstdChunkedEntryKeys, func(field int) bool {
		if seen&(1<<field) != 0 {
			return false
		}
		seen |= 1 << field
		var ok bool
		var n int64
		switch field {
		case zcType:
			je.Type, ok = s.Str(true)
		case zcName:
			je.Name, ok = s.Str(false)
		case zcLinkName:
			je.LinkName, ok = s.Str(false)
		case zcMode:
			je.Mode, ok = s.Integer(64)
		case zcSize:
			je.Size, ok = s.Integer(64)
		case zcUID:
			n, ok = s.Integer(strconv.IntSize)
			je.UID = int(n)
		case zcGID:
			n, ok = s.Integer(strconv.IntSize)
			je.GID = int(n)
		case zcModTime:
			je.ModTime, ok = s.time()
		case zcAccessTime:
			je.AccessTime, ok = s.time()
		case zcChangeTime:
			je.ChangeTime, ok = s.time()
		case zcDevMajor:
			je.DevMajor, ok = s.Integer(64)
		case zcDevMinor:
			je.DevMinor, ok = s.Integer(64)
		case zcXattrs:
			je.Xattrs, ok = s.Xattrs()
		case zcDigest:
			je.Digest, ok = s.Str(false)
		case zcOffset:
			je.Offset, ok = s.Integer(64)
		case zcEndOffset:
			je.EndOffset, ok = s.Integer(64)
		case zcChunkSize:
			je.ChunkSize, ok = s.Integer(64)
		case zcChunkOffset:
			je.ChunkOffset, ok = s.Integer(64)
		case zcChunkDigest:
			je.ChunkDigest, ok = s.Str(false)
		case zcChunkType:
			je.ChunkType, ok = s.Str(true)
		case zcInnerOffset:
			je.InnerOffset, ok = s.Integer(64)
		case zcUserName:
			je.UserName, ok = s.Str(true)
		case zcGroupName:
			je.GroupName, ok = s.Str(true)
		}
		return ok
	})
}

// time reads a *time.Time value: null is nil, a string is what
// time.Time.UnmarshalJSON makes of the literal.
func (s *zstdChunkedScanner) time() (*time.Time, bool) {
	if s.Peek() == 'n' {
		return nil, s.Literal("null")
	}
	start := s.Pos
	raw, escaped, _, ok := s.RawString()
	if !ok {
		return nil, false
	}
	t := s.times.New()
	if v, ok := parseZuluTime(raw); ok && !escaped {
		*t = v
		return t, true
	}
	if err := t.UnmarshalJSON(s.Data[start:s.Pos]); err != nil {
		return nil, false
	}
	return t, true
}

// parseZuluTime parses "2006-01-02T15:04:05Z" with an optional fraction
// of one to nine digits, in UTC, as time.Parse(time.RFC3339) does. It
// reports false for anything else, including dates that do not exist.
func parseZuluTime(b []byte) (time.Time, bool) {
	const base = len("2006-01-02T15:04:05")
	if len(b) < base+1 || b[len(b)-1] != 'Z' || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	num := func(field []byte) int {
		v := 0
		for _, c := range field {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(b[0:4]), num(b[5:7]), num(b[8:10])
	hour, minute, sec := num(b[11:13]), num(b[14:16]), num(b[17:19])
	if year < 0 || month < 1 || month > 12 || day < 1 || day > tocjson.DaysIn(month, year) ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if frac := b[base : len(b)-1]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return time.Time{}, false
		}
		if nsec = num(frac[1:]); nsec < 0 {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			nsec *= 10
		}
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}
