package zstdchunked

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/internal/toctest"
	"github.com/lazylayer/lazylayer/toc"
)

// FuzzUnmarshalZstdChunkedFastPath checks that the hand-written
// zstd:chunked TOC scanner decodes exactly as encoding/json does: whatever
// it accepts, json.Unmarshal decodes to the same document, and
// Unmarshal returns the same TOC or the same error with either
// decoder.
func FuzzUnmarshalZstdChunkedFastPath(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, tocOffset int64) {
		s := &zstdChunkedScanner{Scanner: tocjson.Scanner{Data: data, MaxEntries: toc.DefaultMaxEntries, Interned: make(map[string]string)}}
		if doc, ok := s.document(); ok {
			jsonDoc, err := decodeZstdChunkedDocumentJSON(data, 0)
			if err != nil {
				t.Fatalf("scanner accepted what encoding/json rejects: %v", err)
			}
			if !reflect.DeepEqual(doc, jsonDoc) {
				t.Fatalf("scanner and encoding/json disagree:\nscanner: %+v\njson:    %+v", doc, jsonDoc)
			}
		}
		cfg := toc.NewLimits(toctest.FuzzLimits...)
		fast, fastDigest, fastErr := unmarshalZstdChunked(data, tocOffset, cfg, decodeZstdChunkedDocument)
		slow, slowDigest, slowErr := unmarshalZstdChunked(data, tocOffset, cfg, decodeZstdChunkedDocumentJSON)
		toctest.CheckSameDecoding(t, fastErr, slowErr, fastDigest == slowDigest && reflect.DeepEqual(fast, slow),
			[]any{fast, fastDigest}, []any{slow, slowDigest})
	})
}

func TestZstdChunkedScannerDeclines(t *testing.T) {
	// Each document is one the scanner must leave to encoding/json.
	for _, doc := range []string{
		`{"version":null,"entries":[]}`,
		`{"version":1,"entries":null}`,
		`{"version":1,"entries":[null]}`,
		`{"version":1,"Entries":[]}`,
		`{"version":1,"entries":[],"tarsplitdigest":""}`,
		`{"version":1,"entries":[{"type":"dir","name":"a","endoffset":1}]}`,
		`{"version":1,"entries":[{"type":"dir","name":"a","name":"b"}]}`,
		`{"version":1,"entries":[{"type":"dir","name":"a","modtime":1}]}`,
		`{"version":1,"entries":[{"type":"dir","name":"a","modtime":"yesterday"}]}`,
		`{"version":1,"entries":[{"type":"dir","name":"a","uid":1.5}]}`,
		`{"version":1,"entries":[]}]`,
	} {
		s := &zstdChunkedScanner{Scanner: tocjson.Scanner{Data: []byte(doc), MaxEntries: toc.DefaultMaxEntries, Interned: map[string]string{}}}
		if _, ok := s.document(); ok {
			t.Errorf("scanner accepted %s", doc)
		}
	}
}

func TestZstdChunkedScannerAccepts(t *testing.T) {
	doc := `{"version":1,"extra":[true,null],"entries":[
		{"type":"dir","name":"./a\u00e9/","mode":493,"modtime":"2024-02-29T23:59:59Z","accesstime":null,
		 "changetime":"2024-03-01T00:00:00.5Z","xattrs":{"user.x":"aGk="}},
		{"type":"reg","name":"a/f","size":8,"modtime":"2024-03-01T00:00:00.123456789Z","offset":10,"endOffset":20,
		 "digest":"sha256:dc0e9c3658a1a3ed1ec94274d8b19925c93e1abb7ddba294923ad9bde30f8cb8","chunkSize":4,"chunkType":"zeros",
		 "accesstime":"2024-03-01T01:00:00+01:00","Unknown":{}},
		{"type":"chunk","name":"a/f","offset":15,"chunkOffset":4,"chunkSize":4,"innerOffset":0,"userName":"u","groupName":"g",
		 "uid":0,"gid":-0,"devMajor":1,"devMinor":2,"linkName":"l","chunkDigest":"sha256:x"}
	],"tarSplitDigest":"sha256:y"}`
	s := &zstdChunkedScanner{Scanner: tocjson.Scanner{Data: []byte(doc), MaxEntries: toc.DefaultMaxEntries, Interned: map[string]string{}}}
	got, ok := s.document()
	if !ok {
		t.Fatal("scanner declined a valid document")
	}
	want, err := decodeZstdChunkedDocumentJSON([]byte(doc), 0)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("scanner and encoding/json disagree (json error %v):\nscanner: %+v\njson:    %+v", err, got, want)
	}
}

func TestParseZuluTime(t *testing.T) {
	// Writers' forms, which the scanner must parse itself.
	for _, s := range []string{
		"2024-03-01T12:00:00Z", "2024-02-29T00:00:00Z", "0000-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999999Z", "2024-01-01T00:00:00.1Z", "2024-01-01T00:00:00.050Z",
	} {
		if _, ok := parseZuluTime([]byte(s)); !ok {
			t.Errorf("parseZuluTime(%q) declined a UTC time", s)
		}
	}
	// Whatever it parses, it parses as time.Time.UnmarshalJSON does.
	for _, s := range []string{
		"2024-03-01T12:00:00Z", "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "0000-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999999Z", "2024-01-01T00:00:00.1Z", "2024-01-01T00:00:00.Z",
		"2024-01-01T00:00:00.1234567891Z", "2024-01-01T00:00:00,1Z", "2024-01-01T00:00:00.1aZ",
		"2024-01-01T24:00:00Z", "2024-01-01T23:59:60Z", "2024-13-01T00:00:00Z", "2024-01-01T00:00:00+00:00",
		"2024-01-01t00:00:00Z", "2024-1-01T00:00:00Z", "2024-01-01T00:00:00", "2024-01-01T00:00:00.-1Z",
	} {
		got, ok := parseZuluTime([]byte(s))
		var want time.Time
		err := want.UnmarshalJSON([]byte(`"` + s + `"`))
		if ok && (err != nil || !reflect.DeepEqual(got, want)) {
			t.Errorf("parseZuluTime(%q) = %v; time.Time.UnmarshalJSON: %v, %v", s, got, want, err)
		}
	}
}

func TestDecompressZstdChunkedTOCLength(t *testing.T) {
	js := []byte(`{"version":1,"entries":[]}`)
	compressed, err := CompressFrame(js, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, length := range []int64{0, int64(len(js))} {
		if got, err := DecompressTOC(compressed, length); err != nil || string(got) != string(js) {
			t.Errorf("recorded length %d: %q, %v", length, got, err)
		}
	}
	for _, length := range []int64{int64(len(js)) - 1, int64(len(js)) + 1, 1 << 40} {
		if _, err := DecompressTOC(compressed, length, toc.WithMaxTOCSize(1<<50)); !errors.Is(err, toc.ErrInvalidTOC) {
			t.Errorf("recorded length %d of a %d-byte TOC: error %v, want ErrInvalidTOC", length, len(js), err)
		}
	}
}
