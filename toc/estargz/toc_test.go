package estargz

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/toc"

	"github.com/opencontainers/go-digest"
)

// richTOC returns a TOC with every entry kind, xattrs, owner names that
// change, a multi-chunk file, and chunks that share a member (min chunk
// size) at different inner offsets. FrameEnd values are the ones
// Unmarshal computes for tocOffset 10000. Owner names follow the
// eStargz rule that a name, once given for an id, holds for later entries
// with that id until another name is given.
func richTOC() *toc.TOC {
	mt := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	d := func(s string) digest.Digest { return digest.FromString(s) }
	return &toc.TOC{
		Format:      toc.FormatEStargz,
		PrefetchEnd: 500,
		ChunkSize:   4,
		Entries: []*toc.Entry{
			{Name: ".", Type: toc.TypeDir, Mode: 0o755, ModTime: mt},
			{Name: "bin", Type: toc.TypeDir, Mode: 0o755, UserName: "root", GroupName: "root", ModTime: mt},
			{Name: "bin/tool", Type: toc.TypeReg, Mode: 0o4755, Size: 10, UID: 1000, GID: 1000, UserName: "app", GroupName: "staff",
				ModTime: mt, Digest: d("tool"), Xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02", "user.x": ""},
				Chunks: []toc.Chunk{
					{Offset: 0, Size: 4, Digest: d("c0"), FrameOffset: 100, FrameEnd: 200},
					{Offset: 4, Size: 4, Digest: d("c1"), FrameOffset: 200, FrameEnd: 300},
					{Offset: 8, Size: 2, Digest: d("c2"), FrameOffset: 300, FrameEnd: 500},
				}},
			{Name: "bin/exact", Type: toc.TypeReg, Mode: 0o755, Size: 4, UID: 1000, GID: 1000, UserName: "app", GroupName: "staff",
				Digest: d("exact"), Chunks: []toc.Chunk{
					{Offset: 0, Size: 4, Digest: d("exact"), FrameOffset: 300, FrameEnd: 500, InnerOffset: 1024},
				}},
			{Name: "bin/sh", Type: toc.TypeSymlink, LinkName: "tool", Mode: 0o777, UserName: "root", GroupName: "root"},
			{Name: "bin/tool2", Type: toc.TypeHardlink, LinkName: "bin/tool", UserName: "root", GroupName: "root"},
			{Name: toc.PrefetchLandmark, Type: toc.TypeReg, Size: 1, Digest: LandmarkDigest, UserName: "root", GroupName: "root", Chunks: []toc.Chunk{
				{Offset: 0, Size: 1, Digest: LandmarkDigest, FrameOffset: 500, FrameEnd: 600},
			}},
			{Name: "dev/null", Type: toc.TypeChar, Mode: 0o666, DevMajor: 1, DevMinor: 3, UserName: "root", GroupName: "root"},
			{Name: "dev/sda", Type: toc.TypeBlock, Mode: 0o660, DevMajor: 8, UserName: "root", GroupName: "root"},
			{Name: "run/fifo", Type: toc.TypeFIFO, Mode: 0o644, UID: 1000, UserName: "daemon", GroupName: "root"},
			{Name: "etc/empty", Type: toc.TypeReg, Mode: 0o600, Digest: d(""), UserName: "root", GroupName: "root"},
			{Name: "etc/a", Type: toc.TypeReg, Size: 3, Digest: d("a"), UserName: "root", GroupName: "root", Chunks: []toc.Chunk{
				{Offset: 0, Size: 3, Digest: d("a"), FrameOffset: 600, FrameEnd: 10000},
			}},
			{Name: "etc/b", Type: toc.TypeReg, Size: 5, Digest: d("b"), UserName: "root", GroupName: "root", Chunks: []toc.Chunk{
				{Offset: 0, Size: 4, Digest: d("b0"), FrameOffset: 600, FrameEnd: 10000, InnerOffset: 515},
				{Offset: 4, Size: 1, Digest: d("b1"), FrameOffset: 600, FrameEnd: 10000, InnerOffset: 519},
			}},
		},
	}
}

func TestEStargzRoundTripRich(t *testing.T) {
	want := richTOC()
	js, err := Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(js, 10000)
	if err != nil {
		t.Fatal(err)
	}
	want.Digest = digest.FromBytes(js)
	if !reflect.DeepEqual(got, want) {
		for i := range max(len(got.Entries), len(want.Entries)) {
			if i < len(got.Entries) && i < len(want.Entries) && !reflect.DeepEqual(got.Entries[i], want.Entries[i]) {
				t.Errorf("entry %d:\n got %+v\nwant %+v", i, got.Entries[i], want.Entries[i])
			}
		}
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, want)
	}
	again, err := Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, js) {
		t.Fatalf("second encoding differs:\n%s\n%s", again, js)
	}
}

// TestMarshalEStargzOmissions pins the reference writer's rules for the
// optional fields.
func TestMarshalEStargzOmissions(t *testing.T) {
	js, err := Marshal(richTOC())
	if err != nil {
		t.Fatal(err)
	}
	s := string(js)
	for _, c := range []struct {
		substr string
		count  int
	}{
		{`"userName": "app"`, 1},    // bin/exact repeats uid 1000's name: omitted
		{`"userName": "daemon"`, 1}, // the name for uid 1000 changed: written again
		{`"groupName": "staff"`, 1},
		{`"userName": "root"`, 1}, // the ten later uid 0 entries inherit it
		{`"chunkSize": 4`, 4},     // three full non-last chunks, and bin/exact's single chunk of exactly ChunkSize
		{`"type": "chunk"`, 3},
		{`"modtime": "2024-05-06T07:08:09Z"`, 3},
		{`"xattrs"`, 1},
		{`"user.x": ""`, 1},
		{`"innerOffset": 1024`, 1},
		{"\n", strings.Count(s, "\n")},
	} {
		if n := strings.Count(s, c.substr); n != c.count {
			t.Errorf("%q appears %d times, want %d", c.substr, n, c.count)
		}
	}
	if strings.HasSuffix(s, "\n") || !strings.HasPrefix(s, "{\n\t\"version\": 1,\n\t\"entries\": [\n") {
		t.Errorf("unexpected framing: %q ... %q", s[:40], s[len(s)-10:])
	}
}

func TestMarshalEStargzModTime(t *testing.T) {
	for _, c := range []struct {
		in   time.Time
		want string
	}{
		{time.Time{}, ""},
		{time.Unix(0, 0), ""},
		{time.Date(2020, 1, 2, 3, 4, 5, 600e6, time.FixedZone("X", 3600)), "2020-01-02T02:04:06Z"},
	} {
		if got := formatModTime(c.in); got != c.want {
			t.Errorf("formatModTime(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMarshalEStargzRejectsInvalidModel(t *testing.T) {
	for name, e := range map[string]*toc.Entry{
		"empty name":      {Type: toc.TypeDir},
		"absolute name":   {Name: "/a", Type: toc.TypeDir},
		"dotdot name":     {Name: "a/../b", Type: toc.TypeDir},
		"trailing slash":  {Name: "a/", Type: toc.TypeDir},
		"hardlink target": {Name: "a", Type: toc.TypeHardlink, LinkName: "./b"},
		"zero type":       {Name: "a"},
		"no chunks":       {Name: "a", Type: toc.TypeReg, Size: 3},
		"gap":             {Name: "a", Type: toc.TypeReg, Size: 3, Chunks: []toc.Chunk{{Offset: 1, Size: 2}}},
		"short":           {Name: "a", Type: toc.TypeReg, Size: 3, Chunks: []toc.Chunk{{Offset: 0, Size: 2}}},
		"past end":        {Name: "a", Type: toc.TypeReg, Size: 3, Chunks: []toc.Chunk{{Offset: 0, Size: 4}}},
		"empty w/ chunks": {Name: "a", Type: toc.TypeReg, Chunks: []toc.Chunk{{Offset: 0, Size: 1}}},
		"negative size":   {Name: "a", Type: toc.TypeReg, Size: -1},
	} {
		if _, err := Marshal(&toc.TOC{Entries: []*toc.Entry{e}}); !errors.Is(err, toc.ErrInvalidTOC) {
			t.Errorf("%s: err = %v, want ErrInvalidTOC", name, err)
		}
	}
}

// tocDoc builds TOC JSON from entry objects.
func tocDoc(entries ...string) []byte {
	return []byte(`{"version":1,"entries":[` + strings.Join(entries, ",") + `]}`)
}

const (
	testTOCOffset = 1000
	dg            = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

func reg(name string, size, offset int64, extra string) string {
	return fmt.Sprintf(`{"name":%q,"type":"reg","size":%d,"offset":%d,"digest":%q,"chunkDigest":%q%s}`, name, size, offset, dg, dg, extra)
}

func chunk(name string, offset, chunkOffset, chunkSize int64, extra string) string {
	return fmt.Sprintf(`{"name":%q,"type":"chunk","offset":%d,"chunkOffset":%d,"chunkSize":%d%s}`, name, offset, chunkOffset, chunkSize, extra)
}

func TestUnmarshalEStargzValidation(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		opts []toc.DecodeOption
		want error // nil: must decode
	}{
		{"valid", tocDoc(`{"name":"a","type":"dir"}`, reg("a/f", 10, 100, `,"chunkSize":4`), chunk("a/f", 200, 4, 0, "")), nil, nil},
		{"unknown fields ignored", []byte(`{"version":1,"x":[1],"entries":[{"name":"a","type":"dir","NumLink":0,"future":{"y":1}}]}`), nil, nil},
		{"duplicate names allowed", tocDoc(`{"name":"a","type":"dir"}`, `{"name":"./a/","type":"dir"}`), nil, nil},
		{"root dir", tocDoc(`{"name":"./","type":"dir"}`), nil, nil},
		{"chunk without name", tocDoc(reg("f", 10, 100, `,"chunkSize":4`), `{"type":"chunk","offset":200,"chunkOffset":4}`), nil, nil},
		{"shared member", tocDoc(reg("f", 2, 100, ""), reg("g", 2, 100, `,"innerOffset":514`)), nil, nil},

		{"not JSON", []byte(`{"version":1,`), nil, toc.ErrInvalidTOC},
		{"entries not an array", []byte(`{"version":1,"entries":{}}`), nil, toc.ErrInvalidTOC},
		{"null entry", tocDoc(`null`), nil, toc.ErrInvalidTOC},
		{"no version", []byte(`{"entries":[]}`), nil, toc.ErrUnsupportedVersion},
		{"version 2", []byte(`{"version":2,"entries":[]}`), nil, toc.ErrUnsupportedVersion},
		{"unknown type", tocDoc(`{"name":"s","type":"socket"}`), nil, toc.ErrInvalidTOC},
		{"empty name", tocDoc(`{"name":"","type":"dir"}`), nil, toc.ErrInvalidTOC},
		{"dotdot name", tocDoc(`{"name":"../etc/passwd","type":"dir"}`), nil, toc.ErrInvalidTOC},
		{"inner dotdot name", tocDoc(`{"name":"a/b/../../../c","type":"dir"}`), nil, toc.ErrInvalidTOC},
		{"NUL in name", tocDoc(`{"name":"a\u0000b","type":"dir"}`), nil, toc.ErrInvalidTOC},
		{"root as file", tocDoc(reg("/", 1, 100, "")), nil, toc.ErrInvalidTOC},
		{"hardlink dotdot", tocDoc(`{"name":"l","type":"hardlink","linkName":"../x"}`), nil, toc.ErrInvalidTOC},
		{"hardlink empty", tocDoc(`{"name":"l","type":"hardlink"}`), nil, toc.ErrInvalidTOC},
		{"negative size", tocDoc(reg("f", -1, 100, "")), nil, toc.ErrInvalidTOC},
		{"negative mode", tocDoc(`{"name":"a","type":"dir","mode":-1}`), nil, toc.ErrInvalidTOC},
		{"huge mode", tocDoc(`{"name":"a","type":"dir","mode":4294967296}`), nil, toc.ErrInvalidTOC},
		{"negative uid", tocDoc(`{"name":"a","type":"dir","uid":-1}`), nil, toc.ErrInvalidTOC},
		{"negative devMajor", tocDoc(`{"name":"a","type":"char","devMajor":-1}`), nil, toc.ErrInvalidTOC},
		{"bad modtime", tocDoc(`{"name":"a","type":"dir","modtime":"yesterday"}`), nil, toc.ErrInvalidTOC},
		{"modtime before year 0", tocDoc(`{"name":"a","type":"dir","modtime":"0000-01-01T00:00:00+01:00"}`), nil, toc.ErrInvalidTOC},
		{"bad xattr base64", tocDoc(`{"name":"a","type":"dir","xattrs":{"k":"!!"}}`), nil, toc.ErrInvalidTOC},
		{"bad digest", tocDoc(`{"name":"f","type":"reg","size":1,"offset":100,"digest":"sha256:xyz"}`), nil, toc.ErrInvalidTOC},
		{"bad chunkDigest", tocDoc(`{"name":"f","type":"reg","size":1,"offset":100,"chunkDigest":"md5:00"}`), nil, toc.ErrInvalidTOC},
		{"chunk first", tocDoc(chunk("f", 100, 0, 1, "")), nil, toc.ErrInvalidTOC},
		{"chunk after dir", tocDoc(`{"name":"f","type":"dir"}`, chunk("f", 100, 0, 1, "")), nil, toc.ErrInvalidTOC},
		{"chunk after empty file", tocDoc(reg("f", 0, 0, ""), chunk("f", 100, 0, 1, "")), nil, toc.ErrInvalidTOC},
		{"chunk of another file", tocDoc(reg("f", 10, 100, `,"chunkSize":4`), chunk("g", 200, 4, 0, "")), nil, toc.ErrInvalidTOC},
		{"chunk gap", tocDoc(reg("f", 10, 100, `,"chunkSize":4`), chunk("f", 200, 5, 0, "")), nil, toc.ErrInvalidTOC},
		{"chunk overlap", tocDoc(reg("f", 10, 100, `,"chunkSize":4`), chunk("f", 200, 3, 0, "")), nil, toc.ErrInvalidTOC},
		{"chunk past end", tocDoc(reg("f", 10, 100, `,"chunkSize":4`), chunk("f", 200, 4, 7, "")), nil, toc.ErrInvalidTOC},
		{"chunks short", tocDoc(reg("f", 10, 100, `,"chunkSize":4`)), nil, toc.ErrInvalidTOC},
		{"chunks short before next entry", tocDoc(reg("f", 10, 100, `,"chunkSize":4`), `{"name":"d","type":"dir"}`), nil, toc.ErrInvalidTOC},
		{"first chunk offset", tocDoc(reg("f", 10, 100, `,"chunkOffset":2`)), nil, toc.ErrInvalidTOC},
		{"offset at TOC", tocDoc(reg("f", 1, testTOCOffset, "")), nil, toc.ErrInvalidTOC},
		{"negative offset", tocDoc(reg("f", 1, -5, "")), nil, toc.ErrInvalidTOC},
		{"negative innerOffset", tocDoc(reg("f", 1, 100, `,"innerOffset":-1`)), nil, toc.ErrInvalidTOC},
		{"offsets out of order", tocDoc(reg("f", 1, 200, ""), reg("g", 1, 100, "")), nil, toc.ErrInvalidTOC},
		{"shared member overlap", tocDoc(reg("f", 2, 100, `,"innerOffset":10`), reg("g", 2, 100, `,"innerOffset":11`)), nil, toc.ErrInvalidTOC},
		{"absurd size", tocDoc(reg("f", 1<<40, 100, "")), nil, toc.ErrInvalidTOC},
		{"absurd innerOffset", tocDoc(reg("f", 1, 100, `,"innerOffset":1000000000`)), nil, toc.ErrInvalidTOC},
		{"too many entries", tocDoc(`{"name":"a","type":"dir"}`, `{"name":"b","type":"dir"}`), []toc.DecodeOption{toc.WithMaxEntries(1)}, toc.ErrTOCTooLarge},
		{"too large", tocDoc(`{"name":"a","type":"dir"}`), []toc.DecodeOption{toc.WithMaxTOCSize(10)}, toc.ErrTOCTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Unmarshal(c.data, testTOCOffset, c.opts...)
			if c.want == nil {
				if err != nil {
					t.Fatalf("err = %v, want success", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "toc: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestUnmarshalEStargzNegativeTOCOffset(t *testing.T) {
	if _, err := Unmarshal(tocDoc(), -1); !errors.Is(err, toc.ErrInvalidTOC) {
		t.Fatalf("err = %v, want ErrInvalidTOC", err)
	}
}

func TestUnmarshalEStargzErrorContext(t *testing.T) {
	_, err := Unmarshal(tocDoc(`{"name":"d","type":"dir"}`, reg("f", 10, 100, `,"chunkSize":4`), chunk("f", 200, 5, 0, "")), testTOCOffset)
	const want = `toc: entry "f": chunk 1: offset 5, want 4: invalid TOC`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	_, err = Unmarshal(tocDoc(`{"name":"d","type":"dir"}`, `{"name":"../x","type":"dir"}`), testTOCOffset)
	const want2 = `toc: entry 1 "../x": ".." element in name: invalid TOC`
	if err == nil || err.Error() != want2 {
		t.Fatalf("err = %v, want %q", err, want2)
	}
}

func TestUnmarshalEStargzNames(t *testing.T) {
	got, err := Unmarshal(tocDoc(
		`{"name":"/","type":"dir"}`,
		`{"name":"./usr//bin/","type":"dir"}`,
		`{"name":"/usr/bin/./sh","type":"symlink","linkName":"../../bin/busybox"}`,
		`{"name":"usr/bin/ln","type":"hardlink","linkName":"/usr//bin/./sh"}`,
	), testTOCOffset)
	if err != nil {
		t.Fatal(err)
	}
	var names, links []string
	for _, e := range got.Entries {
		names = append(names, e.Name)
		links = append(links, e.LinkName)
	}
	if want := []string{".", "usr/bin", "usr/bin/sh", "usr/bin/ln"}; !reflect.DeepEqual(names, want) {
		t.Errorf("names = %q, want %q", names, want)
	}
	// Symlink targets are data, kept verbatim; hardlink targets are names.
	if want := []string{"", "", "../../bin/busybox", "usr/bin/sh"}; !reflect.DeepEqual(links, want) {
		t.Errorf("link names = %q, want %q", links, want)
	}
}

func TestUnmarshalEStargzLandmarksAndFrames(t *testing.T) {
	got, err := Unmarshal(tocDoc(
		reg("a", 10, 100, `,"chunkSize":4`), chunk("a", 100, 4, 4, `,"innerOffset":600`), chunk("a", 300, 8, 0, ""),
		reg(toc.PrefetchLandmark, 1, 400, ""),
		reg("b", 1, 500, ""),
	), testTOCOffset)
	if err != nil {
		t.Fatal(err)
	}
	if got.PrefetchEnd != 400 || got.NoPrefetch {
		t.Errorf("PrefetchEnd, NoPrefetch = %d, %v", got.PrefetchEnd, got.NoPrefetch)
	}
	var ends []int64
	for _, e := range got.Entries {
		for _, c := range e.Chunks {
			ends = append(ends, c.FrameEnd)
		}
	}
	if want := []int64{300, 300, 400, 500, testTOCOffset}; !reflect.DeepEqual(ends, want) {
		t.Errorf("frame ends = %v, want %v", ends, want)
	}
	if got.ChunkSize != 4 {
		t.Errorf("ChunkSize = %d, want 4", got.ChunkSize)
	}
}

func TestParseDigestMatchesGoDigest(t *testing.T) {
	for _, s := range []string{
		dg,
		"sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
		"sha256:e3b0",
		"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
		"sha512:" + strings.Repeat("0", 128),
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		"",
		"sha256" + dg,
	} {
		got, err := tocjson.ParseDigest(s)
		want, wantErr := digest.Parse(s)
		if got != want || (err == nil) != (wantErr == nil) {
			t.Errorf("parseDigest(%q) = %q, %v; digest.Parse = %q, %v", s, got, err, want, wantErr)
		}
	}
}
