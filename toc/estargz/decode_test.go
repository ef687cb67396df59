package estargz

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/internal/toctest"
	"github.com/lazylayer/lazylayer/toc"
)

// FuzzUnmarshalEStargzFastPath checks that the hand-written TOC scanner
// decodes exactly as encoding/json does: whatever it accepts, json.Unmarshal
// decodes to the same entries, and Unmarshal returns the same TOC or
// the same error with either decoder.
func FuzzUnmarshalEStargzFastPath(f *testing.F) {
	goldens, _ := filepath.Glob("testdata/*.toc.json")
	for _, name := range goldens {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, int64(1<<40))
	}
	f.Fuzz(func(t *testing.T, data []byte, tocOffset int64) {
		if version, entries, ok := scan(data); ok {
			jsonVersion, jsonEntries, err := tocjson.DecodeDocumentJSON(data, 0)
			if err != nil {
				t.Fatalf("scanner accepted what encoding/json rejects: %v", err)
			}
			if jsonVersion == nil || *jsonVersion != version || !reflect.DeepEqual(entries, jsonEntries) {
				t.Fatalf("scanner and encoding/json disagree:\nscanner: %d %s\njson:    %v %s",
					version, dumpEntries(entries), jsonVersion, dumpEntries(jsonEntries))
			}
		}
		cfg := toc.NewLimits(toctest.FuzzLimits...)
		fast, fastErr := unmarshalEStargz(data, tocOffset, cfg, tocjson.DecodeDocument)
		slow, slowErr := unmarshalEStargz(data, tocOffset, cfg, tocjson.DecodeDocumentJSON)
		toctest.CheckSameDecoding(t, fastErr, slowErr, reflect.DeepEqual(fast, slow), fast, slow)
	})
}

// scan runs the scanner alone, with a generous entry limit.
func scan(data []byte) (version int, entries []*tocjson.Entry, ok bool) {
	s := &tocjson.Scanner{Data: data, MaxEntries: toc.DefaultMaxEntries, Interned: make(map[string]string)}
	return s.Document()
}

func TestScannerStopsAtEntryLimit(t *testing.T) {
	doc := []byte(`{"version":1,"entries":[{},{},{},{}`) // unterminated: the limit comes first
	_, err := Unmarshal(doc, 100, toc.WithMaxEntries(3))
	if !errors.Is(err, toc.ErrTOCTooLarge) {
		t.Fatalf("Unmarshal with 4 entries, limit 3: %v, want ErrTOCTooLarge", err)
	}
}

func dumpEntries(entries []*tocjson.Entry) string {
	s := "["
	for _, e := range entries {
		if e == nil {
			s += "nil "
			continue
		}
		s += "{" + e.Name + "} "
	}
	return s + "]"
}

func TestScanEStargzDocumentDeclines(t *testing.T) {
	// Each document is one the scanner must leave to encoding/json, because
	// encoding/json decodes it in a way the scanner does not model.
	for _, doc := range []string{
		`{"version":1,"entries":[null]}`,
		`{"version":null,"entries":[]}`,
		`{"VERSION":1,"entries":[]}`,
		`{"version":1,"entries":[{"Name":"a","type":"dir"}]}`,
		`{"version":1,"entries":[{"name":"a","name":"b","type":"dir"}]}`,
		`{"version":1,"version":1,"entries":[]}`,
		`{"version":1,"entries":[{"na\u006de":"a","type":"dir"}]}`,
		`{"version":1,"entries":[{"name":"a","type":"dir","mode":1e2}]}`,
		`{"version":1,"entries":[{"name":"a","type":"dir","mode":99999999999999999999}]}`,
		`{"version":1,"entries":[{"name":"a","type":"dir","xattrs":{"k":null}}]}`,
		`{"version":1,"entries":[{"name":"a","type":"dir","xattrs":{"k":"!"}}]}`,
		`{"version":1,"entries":[{"name":"a","type":"dir","ſize":1}]}`,
		`{"version":1,"entries":[]} x`,
		`{"version":1,"entries":[],}`,
		`{"version":1,"entries":[{"name":"a` + "\x01" + `","type":"dir"}]}`,
		`{"version":1,"unknown":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"entries":[]}`,
		`{"version":1,"unknown":01,"entries":[]}`,
		`{"version":1,"unknown":"\x","entries":[]}`,
		`{"entries":[]}`,
	} {
		if _, _, ok := scan([]byte(doc)); ok {
			t.Errorf("scanner accepted %s", doc)
		}
	}
}

func TestScanEStargzDocumentAccepts(t *testing.T) {
	doc := `{"version":1,"extra":{"a":[1,-2.5e+3,true,false,null,"\"\u00e9"]},"entries":[
		{"name":"caf\u00e9/\"q\"","type":"dir","modtime":"2024-02-29T23:59:59Z","Unknown":1,
		 "xattrs":{"user.x":"aGk=","us\u0065r.y":""}},
		{"name":"ünï","type":"reg","size":0,"mode":-0,"uid":123456789012345678901,"gid":0}
	]}`
	// uid overflows int: declined. Without it, accepted.
	if _, _, ok := scan([]byte(doc)); ok {
		t.Fatal("scanner accepted an overflowing uid")
	}
	doc = `{"version":1,"extra":{"a":[1,-2.5e+3,true,false,null,"\"\u00e9"]},"entries":[
		{"name":"caf\u00e9/\"q\"","type":"dir","modtime":"2024-02-29T23:59:59Z","Unknown":1,
		 "xattrs":{"user.x":"aGk=","us\u0065r.y":""}},
		{"name":"ünï","type":"reg","size":0,"mode":-0,"uid":1234567890123456789,"gid":0}
	]}`
	version, entries, ok := scan([]byte(doc))
	if !ok {
		t.Fatal("scanner declined a valid document")
	}
	jsonVersion, jsonEntries, err := tocjson.DecodeDocumentJSON([]byte(doc), 0)
	if err != nil || *jsonVersion != version || !reflect.DeepEqual(entries, jsonEntries) {
		t.Fatalf("scanner and encoding/json disagree (json error %v)", err)
	}
}
