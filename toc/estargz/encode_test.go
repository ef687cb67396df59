package estargz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/toc"

	"github.com/opencontainers/go-digest"
)

// awkwardStrings are pieces of strings that encoding/json escapes or
// treats specially, mixed into generated names and values.
var awkwardStrings = []string{
	"", "a", "usr/lib/x.so", " ", "<", ">", "&", `"`, `\`, "/", "\x00", "\x01", "\b", "\f", "\n", "\r", "\t",
	"\x1f", "\x7f", "\u0080", "é", "日本語", "🙂", "\u2028", "\u2029", "\ufffd", "\ufeff",
	"\xff", "\xc3", "\xe2\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "<script>&amp;</script>",
}

func randomString(r *rand.Rand) string {
	var b []byte
	for range r.IntN(5) {
		b = append(b, awkwardStrings[r.IntN(len(awkwardStrings))]...)
	}
	return string(b)
}

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

func randomBytes(r *rand.Rand) []byte {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []byte{}
	default:
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
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
			Name: randomString(r), Type: randomString(r), Size: randomInt(r), ModTime: randomString(r),
			LinkName: randomString(r), Mode: randomInt(r), UID: int(randomInt(r)), GID: int(randomInt(r)),
			UserName: randomString(r), GroupName: randomString(r), Offset: randomInt(r), InnerOffset: randomInt(r),
			DevMajor: randomInt(r), DevMinor: randomInt(r), Digest: randomString(r), ChunkOffset: randomInt(r),
			ChunkSize: randomInt(r), ChunkDigest: randomString(r),
		}
		switch r.IntN(3) {
		case 0:
			e.Xattrs = map[string][]byte{}
		case 1:
			e.Xattrs = make(map[string][]byte)
			for range 1 + r.IntN(4) {
				e.Xattrs[randomString(r)] = randomBytes(r)
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

// randomTOC returns a valid model TOC with every entry type, chunked
// files, xattrs and awkward owner names, link targets and xattrs.
func randomTOC(r *rand.Rand) *toc.TOC {
	t := &toc.TOC{Format: toc.FormatEStargz, ChunkSize: 1 + r.Int64N(8)}
	var offset int64
	for i := range r.IntN(12) {
		name := fmt.Sprintf("d%d/%s%d", r.IntN(3), []string{"f", "é", "日本", "a<b>&c", "🙂", "\u2028"}[r.IntN(6)], i)
		e := &toc.Entry{Name: name, Type: toc.EntryType(1 + r.IntN(int(toc.TypeFIFO))), Mode: r.Int64N(1 << 12),
			UID: r.IntN(3), GID: r.IntN(3), UserName: randomString(r), GroupName: randomString(r),
			DevMajor: r.Int64N(3), DevMinor: r.Int64N(3)}
		if r.IntN(2) == 0 {
			e.ModTime = time.Unix(r.Int64N(1<<33), r.Int64N(1e9))
		}
		if r.IntN(3) == 0 {
			e.Xattrs = map[string]string{randomString(r): randomString(r), "user.b": string(randomBytes(r))}
		}
		switch e.Type {
		case toc.TypeSymlink:
			e.LinkName = randomString(r)
		case toc.TypeHardlink:
			e.LinkName = "target"
		case toc.TypeReg:
			e.Size = r.Int64N(3 * t.ChunkSize)
			e.Digest = digest.FromString(name)
			for c := int64(0); c < e.Size; c += t.ChunkSize {
				e.Chunks = append(e.Chunks, toc.Chunk{Offset: c, Size: min(t.ChunkSize, e.Size-c),
					Digest: digest.FromString(fmt.Sprint(name, c)), FrameOffset: offset, InnerOffset: r.Int64N(2) * c})
				offset += 1 + r.Int64N(100)
			}
		}
		t.Entries = append(t.Entries, e)
	}
	return t
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
		check(randomTOC(r))
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
