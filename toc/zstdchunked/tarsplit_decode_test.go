package zstdchunked

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vbatts/tar-split/tar/storage"
)

// FuzzTarSplitRecordFastPath checks that the tar-split record scanner
// decodes exactly as encoding/json does. data is split into lines, which
// one decoder decodes in turn (so that its reused buffers are exercised):
// whatever the scanner accepts, json.Unmarshal decodes to the same record,
// and decode returns the same record or the same error as encoding/json.
func FuzzTarSplitRecordFastPath(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var d tarSplitDecoder
		for line := range bytes.Lines(data) {
			var fast, slow tarSplitEntry
			if d.fast(line, &fast) {
				if err := decodeTarSplitEntryJSON(line, &slow); err != nil {
					t.Fatalf("scanner accepted %q, which encoding/json rejects: %v", line, err)
				}
				if err := sameTarSplitEntry(fast, slow); err != nil {
					t.Fatalf("%q: %v", line, err)
				}
			}
			fastErr := d.decode(line, &fast)
			slowErr := decodeTarSplitEntryJSON(line, &slow)
			switch {
			case (fastErr == nil) != (slowErr == nil):
				t.Fatalf("%q: decode error %v, encoding/json error %v", line, fastErr, slowErr)
			case fastErr != nil && fastErr.Error() != slowErr.Error():
				t.Fatalf("%q: errors differ:\ndecode: %v\njson:   %v", line, fastErr, slowErr)
			case fastErr == nil:
				if err := sameTarSplitEntry(fast, slow); err != nil {
					t.Fatalf("%q: %v", line, err)
				}
			}
		}
	})
}

// sameTarSplitEntry reports how the scanner's record differs from
// encoding/json's, payloads compared with their nil-ness.
func sameTarSplitEntry(fast, slow tarSplitEntry) error {
	switch {
	case fast.typ != slow.typ || fast.size != slow.size || !bytes.Equal(fast.name, slow.name):
		return fmt.Errorf("scanner decoded {%d %q %d}, encoding/json {%d %q %d}", fast.typ, fast.name, fast.size, slow.typ, slow.name, slow.size)
	case !bytes.Equal(fast.payload, slow.payload) || (fast.payload == nil) != (slow.payload == nil):
		return fmt.Errorf("scanner decoded payload %#v, encoding/json %#v", fast.payload, slow.payload)
	}
	return nil
}

func TestTarSplitDecoderDeclines(t *testing.T) {
	// Each line is one the scanner must leave to encoding/json, because
	// encoding/json decodes it in a way the scanner does not model.
	for _, line := range []string{
		`{"type":2,"payload":"AAAA","position":0} x`,
		`{"type":2,"payload":"AAAA","position":0,}`,
		`{"type":2,"type":1,"payload":"AAAA","position":0}`,
		`{"Type":2,"payload":"AAAA","position":0}`,
		`{"type":2,"PAYLOAD":"AAAA","position":0}`,
		`{"type":2,"paylοad":"AAAA","position":0}`, // Greek omicron
		`{"type":null,"payload":"AAAA","position":0}`,
		`{"type":2.0,"payload":"AAAA","position":0}`,
		`{"type":2,"payload":"AAAA","position":1e3}`,
		`{"type":2,"payload":"AAAA","position":99999999999999999999}`,
		`{"type":2,"payload":"AA\/AA==","position":0}`,
		`{"type":2,"payload":"AAA\rA","position":0}`,
		`{"type":2,"payload":"AAAA` + "\r\r\r\r" + `AAAA","position":0}`, // raw CRs, which base64 skips
		`{"type":2,"payload":"AA` + "\n" + `==","position":0}`,
		`{"type":2,"payload":"AAA","position":0}`,
		`{"type":2,"payload":5,"position":0}`,
		`{"type":1,"name":5,"size":0,"payload":null,"position":0}`,
		`{"type":1,"name":"a` + "\x01" + `","size":0,"payload":null,"position":0}`,
		`{"type":1,"name":"a","size":0,"payload":null,"position":0`,
		`null`,
		``,
	} {
		var e tarSplitEntry
		if new(tarSplitDecoder).fast([]byte(line), &e) {
			t.Errorf("scanner accepted %s", line)
		}
	}
}

func TestTarSplitDecoderAccepts(t *testing.T) {
	// Records as tar-split writes them, and the variations of the JSON
	// grammar the scanner decodes itself.
	for _, line := range []string{
		`{"type":2,"payload":"dXNyLwAAAAA=","position":0}` + "\n",
		`{"type":1,"name":"usr/bin/a \u003c b","size":5,"payload":"AAECAwQFBgc=","position":1}` + "\n",
		`{"type":1,"name":"empty","payload":null,"position":2}` + "\n",
		`{"type":1,"name_raw":"/w==","size":1,"payload":"AAECAwQFBgc=","position":3}` + "\n",
		`{"type":1,"name":"x","name_raw":"","size":0,"payload":"","position":4}`,
		` { "type" : 2 , "payload" : "AAAA" , "position" : -0 , "extra" : [1, {"a": null}] } ` + "\r\n",
		`{"type":1,"name":"ünï\"q\"","payload":null,"position":5}`,
		`{}`,
	} {
		var fast, slow tarSplitEntry
		if !new(tarSplitDecoder).fast([]byte(line), &fast) {
			t.Errorf("scanner declined %s", line)
			continue
		}
		if err := decodeTarSplitEntryJSON([]byte(line), &slow); err != nil {
			t.Fatalf("encoding/json rejects %s: %v", line, err)
		}
		if err := sameTarSplitEntry(fast, slow); err != nil {
			t.Errorf("%s: %v", line, err)
		}
	}
}

// TestTarSplitDecoderReusesBuffers checks that records decoded into the
// decoder's buffers do not allocate once the buffers have grown.
func TestTarSplitDecoderReusesBuffers(t *testing.T) {
	var d tarSplitDecoder
	var e tarSplitEntry
	segment := []byte(`{"type":2,"payload":"` + strings.Repeat("AAAA", 171) + `","position":0}` + "\n")
	file := []byte(`{"type":1,"name":"usr/lib/go/src/fmt/print.go","size":31415,"payload":"AAECAwQFBgc=","position":1}` + "\n")
	allocs := testing.AllocsPerRun(100, func() {
		if !d.fast(segment, &e) || len(e.payload) != 513 || !d.fast(file, &e) || string(e.name) != "usr/lib/go/src/fmt/print.go" {
			t.Fatal("scanner declined a record tar-split writes")
		}
	})
	if allocs != 0 {
		t.Errorf("decoding two records allocates %v times", allocs)
	}
}

// tarSplitReaderOf returns a reader of the tar-split records, compressed,
// closed when the test ends.
func tarSplitReaderOf(t *testing.T, records []byte) *TarSplitReader {
	t.Helper()
	compressed, err := CompressFrame(records, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewTarSplitReader(compressed, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestTarSplitReaderRejectsTypeOutOfRange(t *testing.T) {
	// 257 narrowed to a byte would be a file record.
	r := tarSplitReaderOf(t, []byte(`{"type":257,"name":"a","size":0,"payload":null,"position":0}`+"\n"))
	if rec, err := r.Next(); !errors.Is(err, ErrInvalidTarSplit) {
		t.Errorf("Next = %+v, %v; want ErrInvalidTarSplit", rec, err)
	}
}

func TestTarSplitReaderNextCopies(t *testing.T) {
	var buf bytes.Buffer
	p := storage.NewJSONPacker(&buf)
	for _, e := range []storage.Entry{
		{Type: storage.SegmentType, Payload: []byte("first segment")},
		{Type: storage.FileType, Name: "a", Size: 3, Payload: []byte("12345678")},
		{Type: storage.SegmentType, Payload: []byte("second")},
		{Type: storage.FileType, Name: "empty"},
	} {
		if _, err := p.AddEntry(e); err != nil {
			t.Fatal(err)
		}
	}
	r := tarSplitReaderOf(t, buf.Bytes())
	var got []*TarSplitRecord
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		got = append(got, rec)
	}
	want := []TarSplitRecord{
		{Type: TarSplitSegment, Payload: []byte("first segment")},
		{Type: TarSplitFile, Name: "a", Size: 3, Payload: []byte("12345678")},
		{Type: TarSplitSegment, Payload: []byte("second")},
		{Type: TarSplitFile, Name: "empty"},
	}
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i, rec := range got {
		w := want[i]
		if rec.Type != w.Type || rec.Name != w.Name || rec.Size != w.Size || !bytes.Equal(rec.Payload, w.Payload) {
			t.Errorf("record %d = %+v, want %+v (earlier records must survive later ones)", i, *rec, w)
		}
	}
}
