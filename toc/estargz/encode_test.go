package estargz

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/internal/toctest"
	"github.com/lazylayer/lazylayer/toc"
)

func randomInt(r *rand.Rand) int64 {
	switch r.IntN(6) {
	case 0, 1:
		return 0
	case 2:
		return r.Int64N(1000)
	case 3:
		return -r.Int64N(1 << 40)
	case 4:
		return []int64{math.MaxInt64, math.MinInt64, -1, 1}[r.IntN(4)]
	default:
		return r.Int64()
	}
}

// randomEStargzDocument returns a TOC document with any field values,
// including ones Marshal never produces (negative numbers, nil
// entries, nil xattr values): the encoder must match encoding/json on all
// of them.
func randomEStargzDocument(r *rand.Rand) *estargzTOC {
	doc := &estargzTOC{Version: int(randomInt(r))}
	switch r.IntN(8) {
	case 0:
		return doc // nil entries
	case 1:
		doc.Entries = []*tocjson.Entry{}
		return doc
	}
	for range r.IntN(6) {
		if r.IntN(10) == 0 {
			doc.Entries = append(doc.Entries, nil)
			continue
		}
		e := &tocjson.Entry{
			Name: toctest.RandomString(r), Type: toctest.RandomString(r), Size: randomInt(r), ModTime: toctest.RandomString(r),
			LinkName: toctest.RandomString(r), Mode: randomInt(r), UID: int(randomInt(r)), GID: int(randomInt(r)),
			UserName: toctest.RandomString(r), GroupName: toctest.RandomString(r), Offset: randomInt(r), InnerOffset: randomInt(r),
			DevMajor: randomInt(r), DevMinor: randomInt(r), Digest: toctest.RandomString(r), ChunkOffset: randomInt(r),
			ChunkSize: randomInt(r), ChunkDigest: toctest.RandomString(r),
		}
		switch r.IntN(3) {
		case 0:
			e.Xattrs = map[string][]byte{}
		case 1:
			e.Xattrs = make(map[string][]byte)
			for range 1 + r.IntN(4) {
				e.Xattrs[toctest.RandomString(r)] = toctest.RandomBytes(r)
			}
		}
		doc.Entries = append(doc.Entries, e)
	}
	return doc
}

func checkEncodesAsJSON(t *testing.T, doc *estargzTOC) {
	t.Helper()
	want, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if got := appendEStargzDocument(nil, doc); !bytes.Equal(got, want) {
		t.Fatalf("encoder and encoding/json differ:\ngot:  %q\nwant: %q", got, want)
	}
}

func TestAppendEStargzDocumentMatchesJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		checkEncodesAsJSON(t, randomEStargzDocument(r))
	}
}

func TestMarshalEStargzMatchesJSON(t *testing.T) {
	check := func(index *toc.TOC) {
		t.Helper()
		doc, err := newEStargzDocument(index)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.MarshalIndent(doc, "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		got, err := Marshal(index)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Marshal and encoding/json differ:\ngot:  %q\nwant: %q", got, want)
		}
	}
	check(&toc.TOC{Format: toc.FormatEStargz})
	check(richTOC())
	large, _ := syntheticTOC(2000)
	check(large)
	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		check(toctest.RandomTOC(r))
	}
}

// FuzzMarshalEStargzMatchesJSON checks that the hand-written encoder
// writes what json.MarshalIndent writes for documents built from the
// fuzzed strings, bytes and number, in every field.
func FuzzMarshalEStargzMatchesJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, name, text, key string, value []byte, number int64, shape uint8) {
		e := &tocjson.Entry{
			Name: name, Type: text, Size: number, ModTime: text, LinkName: name, Mode: number,
			UID: int(number), GID: int(-number), UserName: text, GroupName: name, Offset: -number,
			InnerOffset: number, DevMajor: number, DevMinor: number, Digest: text,
			ChunkOffset: number, ChunkSize: number, ChunkDigest: name,
		}
		if shape&1 != 0 {
			e.Xattrs = map[string][]byte{key: value, name: nil, text: []byte(key)}
		}
		doc := &estargzTOC{Version: int(number), Entries: []*tocjson.Entry{e, {Name: key, Type: name}}}
		switch {
		case shape&2 != 0:
			doc.Entries = nil
		case shape&4 != 0:
			doc.Entries = doc.Entries[:0]
		case shape&8 != 0:
			doc.Entries = append(doc.Entries, nil)
		}
		checkEncodesAsJSON(t, doc)
	})
}
