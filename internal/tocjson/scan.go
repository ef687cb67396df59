package tocjson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// decodeEStargzDocument parses TOC JSON into its version (nil if absent)
// and entries. A hand-written scanner decodes the schema as producers write
// it, several times faster than encoding/json's reflection; whenever it
// meets anything it is not certain to decode exactly as encoding/json
// would (a syntax error, null, a duplicate or case-folded key, a number
// with a fraction, a string escape in a key), the whole document is decoded
// by json.Unmarshal instead, so results and errors are always its.
//
// One difference is deliberate: the scanner stops with errTooManyEntries
// at entry maxEntries+1, so that a document of millions of tiny entries
// costs no more than maxEntries of them. (encoding/json decodes them all;
// the caller rejects the count afterwards.)
func DecodeDocument(data []byte, maxEntries int) (version *int, entries []*Entry, err error) {
	s := &Scanner{Data: data, MaxEntries: maxEntries, Interned: make(map[string]string)}
	if v, es, ok := s.Document(); ok {
		return &v, es, nil
	}
	if s.TooMany {
		return nil, nil, ErrTooManyEntries
	}
	return DecodeDocumentJSON(data, maxEntries)
}

// errTooManyEntries reports that the scanner stopped at the entry limit.
var ErrTooManyEntries = errors.New("too many entries")

// decodeEStargzDocumentJSON is decodeEStargzDocument by encoding/json
// alone, which leaves the entry limit to the caller.
func DecodeDocumentJSON(data []byte, _ int) (version *int, entries []*Entry, err error) {
	var doc struct {
		Version *int     `json:"version"`
		Entries []*Entry `json:"entries"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, err
	}
	return doc.Version, doc.Entries, nil
}

// Keys of the TOC document and of an entry, as estargzTOC and
// estargzEntry spell them. The scanner declines keys that differ from
// these only in case, which encoding/json would match.
var (
	estargzDocumentKeys = []string{"version", "entries"}
	estargzEntryKeys    = []string{
		"name", "type", "size", "modtime", "linkName", "mode", "uid", "gid",
		"userName", "groupName", "offset", "innerOffset", "devMajor", "devMinor",
		"xattrs", "digest", "chunkOffset", "chunkSize", "chunkDigest",
	}
)

const (
	// maxSkipDepth bounds the nesting of unknown values the scanner skips;
	// deeper ones are left to encoding/json.
	maxSkipDepth = 64
	// allocBlockSize is the most entries or chunks decoding allocates at
	// once (see slab).
	allocBlockSize = 256
	// maxInterned bounds the table of repeated short strings.
	maxInterned = 4096
)

// estargzScanner is a single-pass reader of TOC JSON. Its methods report
// false when the input is not in the subset it decodes exactly.
type Scanner struct {
	Data []byte
	Pos  int

	MaxEntries int
	TooMany    bool // stopped because there are over maxEntries entries

	block    Slab[Entry]
	Interned map[string]string // values of fields that repeat across entries

	// more, if set, is how the scanner reads a document still arriving:
	// data is a prefix of it, and more(n) waits for a prefix of at least
	// n bytes and returns it, or returns the whole document if it is
	// shorter. When an entry does not parse in what the scanner has, it
	// parses the entry again in a prefix holding at least twice as much
	// of it, so that no entry costs more than a few passes.
	More func(n int) []byte
}

// entryLookahead is how many bytes the scanner of an arriving document
// wants past an entry it parsed, so that the separator after it is there.
const entryLookahead = 64

// document reads the whole input as a TOC document.
func (s *Scanner) Document() (version int, entries []*Entry, ok bool) {
	var seen [2]bool
	ok = s.Object(estargzDocumentKeys, func(field int) bool {
		if seen[field] {
			return false
		}
		seen[field] = true
		var valid bool
		if field == 0 {
			var v int64
			v, valid = s.Integer(strconv.IntSize)
			version = int(v)
		} else {
			entries, valid = s.Entries()
		}
		return valid
	})
	s.SkipSpace()
	return version, entries, ok && seen[0] && s.Pos == len(s.Data)
}

func (s *Scanner) Entries() ([]*Entry, bool) {
	return ScanEntries(s, &s.block, s.entry)
}

// A slab hands out zeroed values of T from arrays allocated together:
// a TOC keeps its entries all alive anyway, and one allocation per value
// dominated decoding. The arrays grow from 8 values to allocBlockSize, so
// that a small TOC allocates little. The zero value is ready to use.
type Slab[T any] struct {
	free []T
	n    int // length of the last array
}

// next returns a fresh value as a slice of length and capacity 1.
func (s *Slab[T]) next() []T {
	if len(s.free) == 0 {
		s.n = min(max(2*s.n, 8), allocBlockSize)
		s.free = make([]T, s.n)
	}
	v := s.free[:1:1]
	s.free = s.free[1:]
	return v
}

// new returns a pointer to a fresh value.
func (s *Slab[T]) New() *T { return &s.next()[0] }

// scanEntries reads an array of entry objects with entry, allocating them
// from block in batches. In an arriving document (see more), an entry
// that does not parse in what has arrived is parsed again once at least
// twice as much of it is in.
func ScanEntries[E any](s *Scanner, block *Slab[E], entry func(*E) bool) ([]*E, bool) {
	entries := []*E{}
	ok := s.array(func() bool {
		start, n := s.Pos, len(entries)
		for {
			if s.Peek() == '{' {
				if len(entries) == s.MaxEntries {
					s.TooMany = true
					return false
				}
				je := block.New()
				entries = append(entries, je)
				if entry(je) {
					if len(s.Data)-s.Pos < entryLookahead {
						s.grow(s.Pos + entryLookahead)
					}
					return true
				}
			}
			// Null entries, among others, are left to encoding/json,
			// unless the entry may only be cut short.
			if !s.grow(start + 2*(len(s.Data)-start) + 1) {
				return false
			}
			s.Pos, entries = start, entries[:n]
		}
	})
	// The rest of the document is short; take it all.
	s.grow(math.MaxInt)
	return entries, ok
}

// grow extends data to at least n bytes of an arriving document, or to
// all of it, and reports whether data grew.
func (s *Scanner) grow(n int) bool {
	if s.More == nil || n <= len(s.Data) {
		return false
	}
	have := len(s.Data)
	s.Data = s.More(n)
	return len(s.Data) > have
}

func (s *Scanner) entry(je *Entry) bool {
	var seen uint32
	return s.Object(estargzEntryKeys, func(field int) bool {
		if seen&(1<<field) != 0 {
			return false
		}
		seen |= 1 << field
		var ok bool
		switch estargzEntryKeys[field] {
		case "name":
			je.Name, ok = s.Str(false)
		case "type":
			je.Type, ok = s.Str(true)
		case "size":
			je.Size, ok = s.Integer(64)
		case "modtime":
			je.ModTime, ok = s.Str(true)
		case "linkName":
			je.LinkName, ok = s.Str(false)
		case "mode":
			je.Mode, ok = s.Integer(64)
		case "uid":
			var v int64
			v, ok = s.Integer(strconv.IntSize)
			je.UID = int(v)
		case "gid":
			var v int64
			v, ok = s.Integer(strconv.IntSize)
			je.GID = int(v)
		case "userName":
			je.UserName, ok = s.Str(true)
		case "groupName":
			je.GroupName, ok = s.Str(true)
		case "offset":
			je.Offset, ok = s.Integer(64)
		case "innerOffset":
			je.InnerOffset, ok = s.Integer(64)
		case "devMajor":
			je.DevMajor, ok = s.Integer(64)
		case "devMinor":
			je.DevMinor, ok = s.Integer(64)
		case "xattrs":
			je.Xattrs, ok = s.Xattrs()
		case "digest":
			je.Digest, ok = s.Str(false)
		case "chunkOffset":
			je.ChunkOffset, ok = s.Integer(64)
		case "chunkSize":
			je.ChunkSize, ok = s.Integer(64)
		case "chunkDigest":
			je.ChunkDigest, ok = s.Str(false)
		}
		return ok
	})
}

// xattrs decodes an object of base64 strings, as encoding/json decodes
// map[string][]byte.
func (s *Scanner) Xattrs() (map[string][]byte, bool) {
	if s.Peek() != '{' {
		return nil, false
	}
	s.Pos++
	m := make(map[string][]byte)
	if s.consume('}') {
		return m, true
	}
	for {
		k, ok := s.Str(false)
		if !ok || !s.consume(':') {
			return nil, false
		}
		v, ok := s.Str(false)
		if !ok {
			return nil, false
		}
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, false
		}
		m[k] = b
		if s.consume(',') {
			continue
		}
		return m, s.consume('}')
	}
}

// object reads an object whose known keys are keys, calling value with a
// key's index to read its value. Unknown keys are skipped, as
// encoding/json does; keys it would match by case folding are declined.
func (s *Scanner) Object(keys []string, value func(field int) bool) bool {
	if !s.consume('{') {
		return false
	}
	if s.consume('}') {
		return true
	}
	for {
		key, ok := s.plainKey()
		if !ok || !s.consume(':') {
			return false
		}
		field := -1
		for i, k := range keys {
			if string(key) == k {
				field = i
				break
			}
		}
		if field >= 0 {
			ok = value(field)
		} else {
			ok = !foldsToAny(key, keys) && s.skipValue(0)
		}
		if !ok {
			return false
		}
		if s.consume(',') {
			continue
		}
		return s.consume('}')
	}
}

// foldsToAny reports whether encoding/json might match key to one of keys
// by case folding: key is not ASCII (its folding knows the Kelvin sign and
// the long s) or equals one of keys ignoring ASCII case.
func foldsToAny(key []byte, keys []string) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	for _, k := range keys {
		if len(k) != len(key) {
			continue
		}
		equal := true
		for i := range key {
			if lowerASCII(key[i]) != lowerASCII(k[i]) {
				equal = false
				break
			}
		}
		if equal {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func (s *Scanner) array(element func() bool) bool {
	if !s.consume('[') {
		return false
	}
	if s.consume(']') {
		return true
	}
	for {
		if !element() {
			return false
		}
		if s.consume(',') {
			continue
		}
		return s.consume(']')
	}
}

// rawString reads a string literal, returning its contents undecoded and
// whether they contain an escape or a non-ASCII byte.
func (s *Scanner) RawString() (raw []byte, escaped, nonASCII, ok bool) {
	if !s.consume('"') {
		return nil, false, false, false
	}
	start := s.Pos
	for s.Pos < len(s.Data) {
		c := s.Data[s.Pos]
		switch {
		case c == '"':
			raw = s.Data[start:s.Pos]
			s.Pos++
			return raw, escaped, nonASCII, true
		case c < 0x20:
			return nil, false, false, false
		case c == '\\':
			escaped = true
			s.Pos++
			if s.Pos == len(s.Data) || !validEscape(s.Data[s.Pos:]) {
				return nil, false, false, false
			}
		case c >= utf8.RuneSelf:
			nonASCII = true
		}
		s.Pos++
	}
	return nil, false, false, false
}

// validEscape reports whether b starts with what may follow a backslash.
func validEscape(b []byte) bool {
	switch b[0] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return true
	case 'u':
		if len(b) < 5 {
			return false
		}
		for _, c := range b[1:5] {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
		return true
	}
	return false
}

// plainKey reads an object key that needs no decoding.
func (s *Scanner) plainKey() ([]byte, bool) {
	raw, escaped, _, ok := s.RawString()
	return raw, ok && !escaped
}

// str reads a string value. Plain ASCII and valid UTF-8 are converted
// directly; escapes and invalid UTF-8 (which encoding/json replaces) are
// decoded by encoding/json itself. intern shares the string between the
// entries that repeat it.
func (s *Scanner) Str(intern bool) (string, bool) {
	start := s.Pos
	raw, escaped, nonASCII, ok := s.RawString()
	if !ok {
		return "", false
	}
	if escaped || nonASCII && !utf8.Valid(raw) {
		var v string
		if err := json.Unmarshal(s.Data[start:s.Pos], &v); err != nil {
			return "", false
		}
		return v, true
	}
	if !intern {
		return string(raw), true
	}
	if v, ok := s.Interned[string(raw)]; ok {
		return v, true
	}
	v := string(raw)
	if len(s.Interned) < maxInterned {
		s.Interned[v] = v
	}
	return v, true
}

// integer reads an integer literal that fits in bits bits. Fractions,
// exponents and overflow are declined (encoding/json rejects them too,
// with its own error).
func (s *Scanner) Integer(bits int) (int64, bool) {
	s.SkipSpace()
	start := s.Pos
	if s.Pos < len(s.Data) && s.Data[s.Pos] == '-' {
		s.Pos++
	}
	if !s.digits() {
		return 0, false
	}
	if s.Pos < len(s.Data) {
		if c := s.Data[s.Pos]; c == '.' || c == 'e' || c == 'E' {
			return 0, false
		}
	}
	lit := s.Data[start:s.Pos]
	if len(lit) <= 18 && bits == 64 {
		// At most 18 digits cannot overflow an int64.
		var n int64
		for _, c := range bytes.TrimPrefix(lit, []byte("-")) {
			n = n*10 + int64(c-'0')
		}
		if lit[0] == '-' {
			n = -n
		}
		return n, true
	}
	n, err := strconv.ParseInt(string(lit), 10, bits)
	return n, err == nil
}

// digits reads the integer part of a JSON number: 0 or a non-zero digit
// and more digits.
func (s *Scanner) digits() bool {
	if s.Pos == len(s.Data) || s.Data[s.Pos] < '0' || s.Data[s.Pos] > '9' {
		return false
	}
	if s.Data[s.Pos] == '0' {
		s.Pos++
		return true
	}
	for s.Pos < len(s.Data) && '0' <= s.Data[s.Pos] && s.Data[s.Pos] <= '9' {
		s.Pos++
	}
	return true
}

// skipValue reads and discards any JSON value.
func (s *Scanner) skipValue(depth int) bool {
	if depth > maxSkipDepth {
		return false
	}
	switch s.Peek() {
	case '{':
		s.Pos++
		if s.consume('}') {
			return true
		}
		for {
			if _, _, _, ok := s.RawString(); !ok || !s.consume(':') || !s.skipValue(depth+1) {
				return false
			}
			if s.consume(',') {
				continue
			}
			return s.consume('}')
		}
	case '[':
		return s.array(func() bool { return s.skipValue(depth + 1) })
	case '"':
		_, _, _, ok := s.RawString()
		return ok
	case 't':
		return s.Literal("true")
	case 'f':
		return s.Literal("false")
	case 'n':
		return s.Literal("null")
	}
	return s.skipNumber()
}

func (s *Scanner) Literal(lit string) bool {
	if len(s.Data)-s.Pos < len(lit) || string(s.Data[s.Pos:s.Pos+len(lit)]) != lit {
		return false
	}
	s.Pos += len(lit)
	return true
}

// skipNumber reads a number in full JSON syntax.
func (s *Scanner) skipNumber() bool {
	if s.Pos < len(s.Data) && s.Data[s.Pos] == '-' {
		s.Pos++
	}
	if !s.digits() {
		return false
	}
	if s.Pos < len(s.Data) && s.Data[s.Pos] == '.' {
		s.Pos++
		if !s.moreDigits() {
			return false
		}
	}
	if s.Pos < len(s.Data) && (s.Data[s.Pos] == 'e' || s.Data[s.Pos] == 'E') {
		s.Pos++
		if s.Pos < len(s.Data) && (s.Data[s.Pos] == '+' || s.Data[s.Pos] == '-') {
			s.Pos++
		}
		if !s.moreDigits() {
			return false
		}
	}
	return true
}

// moreDigits reads one or more decimal digits.
func (s *Scanner) moreDigits() bool {
	start := s.Pos
	for s.Pos < len(s.Data) && '0' <= s.Data[s.Pos] && s.Data[s.Pos] <= '9' {
		s.Pos++
	}
	return s.Pos > start
}

func (s *Scanner) SkipSpace() {
	for s.Pos < len(s.Data) {
		switch s.Data[s.Pos] {
		case ' ', '\t', '\n', '\r':
			s.Pos++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, or 0 at the end.
func (s *Scanner) Peek() byte {
	s.SkipSpace()
	if s.Pos == len(s.Data) {
		return 0
	}
	return s.Data[s.Pos]
}

// consume reads c, after white space, if it comes next.
func (s *Scanner) consume(c byte) bool {
	if s.Peek() != c || s.Pos == len(s.Data) {
		return false
	}
	s.Pos++
	return true
}

// parseModTime parses an RFC 3339 modtime. The form writers use,
// "2006-01-02T15:04:05Z", is parsed by hand; anything else, and anything
// out of range, by time.Parse, which also supplies the error.
func parseModTime(s string) (time.Time, error) {
	if t, ok := parseUTCSeconds(s); ok {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

func parseUTCSeconds(s string) (time.Time, bool) {
	if len(s) != len("2006-01-02T15:04:05Z") || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
		s[13] != ':' || s[16] != ':' || s[19] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec := num(11, 2), num(14, 2), num(17, 2)
	if year < 0 || month < 1 || month > 12 || day < 1 || day > DaysIn(month, year) ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC), true
}

func DaysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
