package estargz

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/lazylayer/lazylayer/internal/tocjson"
)

// appendEStargzDocument appends doc to b exactly as
// json.MarshalIndent(doc, "", "\t") writes it. encoding/json reflects on
// every field and then re-indents its compact output; for the TOC of a
// large layer that was the longest step a writer takes after the last data
// member, on one core. The differential test and fuzz target hold the two
// byte for byte equal.
func appendEStargzDocument(b []byte, doc *estargzTOC) []byte {
	b = append(b, "{\n\t\"version\": "...)
	b = strconv.AppendInt(b, int64(doc.Version), 10)
	b = append(b, ",\n\t\"entries\": "...)
	switch {
	case doc.Entries == nil:
		b = append(b, "null"...)
	case len(doc.Entries) == 0:
		b = append(b, "[]"...)
	default:
		b = append(b, '[')
		for i, e := range doc.Entries {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, estargzEntrySeparator...)
			b = appendEStargzEntry(b, e)
		}
		b = append(b, estargzEntriesEnd...)
	}
	return append(b, estargzDocumentEnd...)
}

// The framing of a TOC document of version 1 around its entries, as
// json.MarshalIndent writes it.
const (
	estargzDocumentStart  = "{\n\t\"version\": 1,\n\t\"entries\": ["
	estargzEntrySeparator = "\n\t\t"
	estargzEntriesEnd     = "\n\t]"
	estargzDocumentEnd    = "\n}"
)

// appendEStargzEntry appends one entry at the indentation of the entries
// array's elements. Fields are in struct order; those tagged omitempty
// are left out when zero.
func appendEStargzEntry(b []byte, e *tocjson.Entry) []byte {
	if e == nil {
		return append(b, "null"...)
	}
	b = append(b, "{\n\t\t\t\"name\": "...)
	b = appendJSONString(b, e.Name)
	b = append(b, ",\n\t\t\t\"type\": "...)
	b = appendJSONString(b, e.Type)
	b = appendIntField(b, "size", e.Size)
	b = appendStringField(b, "modtime", e.ModTime)
	b = appendStringField(b, "linkName", e.LinkName)
	b = appendIntField(b, "mode", e.Mode)
	b = appendIntField(b, "uid", int64(e.UID))
	b = appendIntField(b, "gid", int64(e.GID))
	b = appendStringField(b, "userName", e.UserName)
	b = appendStringField(b, "groupName", e.GroupName)
	b = appendIntField(b, "offset", e.Offset)
	b = appendIntField(b, "innerOffset", e.InnerOffset)
	b = appendIntField(b, "devMajor", e.DevMajor)
	b = appendIntField(b, "devMinor", e.DevMinor)
	if len(e.Xattrs) > 0 {
		b = append(b, ",\n\t\t\t\"xattrs\": {"...)
		// encoding/json sorts map keys as byte strings.
		keys := make([]string, 0, len(e.Xattrs))
		for k := range e.Xattrs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, "\n\t\t\t\t"...)
			b = appendJSONString(b, k)
			b = append(b, ": "...)
			b = appendJSONBytes(b, e.Xattrs[k])
		}
		b = append(b, "\n\t\t\t}"...)
	}
	b = appendStringField(b, "digest", e.Digest)
	b = appendIntField(b, "chunkOffset", e.ChunkOffset)
	b = appendIntField(b, "chunkSize", e.ChunkSize)
	b = appendStringField(b, "chunkDigest", e.ChunkDigest)
	return append(b, "\n\t\t}"...)
}

// appendIntField appends an omitempty integer field of an entry.
func appendIntField(b []byte, key string, v int64) []byte {
	if v == 0 {
		return b
	}
	b = appendKey(b, key)
	return strconv.AppendInt(b, v, 10)
}

// appendStringField appends an omitempty string field of an entry.
func appendStringField(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = appendKey(b, key)
	return appendJSONString(b, v)
}

// appendKey starts a field of an entry other than the first; key is one
// of the struct tags, which need no escaping.
func appendKey(b []byte, key string) []byte {
	b = append(b, ",\n\t\t\t\""...)
	b = append(b, key...)
	return append(b, "\": "...)
}

// appendJSONBytes appends v as encoding/json encodes a []byte: null for
// nil, otherwise standard base64 in quotes.
func appendJSONBytes(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// appendJSONString appends s quoted as encoding/json quotes it. Names,
// digests and times are almost always printable ASCII that needs no
// escaping; anything else is left to encoding/json, whose rules (HTML
// escaping, U+2028 and U+2029, replacing invalid UTF-8) the output must
// follow exactly.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainJSONByte[s[i]] {
			quoted, _ := json.Marshal(s) // a string always marshals
			return append(b, quoted...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainJSONByte reports the bytes encoding/json writes unescaped in a
// string: printable ASCII (DEL included) except the quote, the backslash
// and the HTML-sensitive <, > and &.
var plainJSONByte = func() (t [256]bool) {
	for c := 0x20; c <= 0x7f; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()
