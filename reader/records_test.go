package reader

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/toc/estargz"
	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
	"github.com/opencontainers/go-digest"
)

// TestRecordsRebuildEveryField compacts entries that use every field of
// the model, and the forms a record holds apart (see recordExt), and
// checks that the entries built back equal them.
func TestRecordsRebuildEveryField(t *testing.T) {
	sum := digest.FromString("a")
	other := digest.FromString("b")
	zone := time.FixedZone("x", 3600)
	entries := []*toc.Entry{
		{Name: ".", Type: toc.TypeDir, Mode: 0o755},
		{Name: "a", TarName: "./a", Type: toc.TypeReg, Size: 3, Mode: 0o4755, UID: 1, GID: 2, UserName: "u", GroupName: "g",
			ModTime: time.Unix(1e9, 123).UTC(), AccessTime: time.Unix(5, 0).UTC(), ChangeTime: time.Unix(6, 7).UTC(),
			Xattrs: map[string]string{"user.k": "v"}, Digest: sum,
			Chunks: []toc.Chunk{{Size: 3, Digest: sum, FrameOffset: 10, FrameEnd: 20, InnerOffset: 1}}},
		{Name: "big", Type: toc.TypeReg, Size: 8, Digest: other, UID: 1 << 40, GID: 3,
			Chunks: []toc.Chunk{
				{Size: 4, Digest: digest.FromString("c"), FrameOffset: 20, FrameEnd: 30},
				{Offset: 4, Size: 2, FrameOffset: 30, FrameEnd: 40},
				{Offset: 6, Size: 2, Zeros: true, FrameOffset: 40, FrameEnd: 50},
			}},
		{Name: "odd", Type: toc.TypeReg, Mode: 1 << 40, Digest: "sha512:" + digest.Digest(bytes.Repeat([]byte("ab"), 64)),
			ModTime: time.Unix(7, 8).In(zone)},
		{Name: "upper", Type: toc.TypeReg, Digest: "sha256:" + digest.Digest(bytes.ToUpper([]byte(sum.Encoded())))},
		{Name: "one", Type: toc.TypeReg, Size: 1, Digest: sum, Chunks: []toc.Chunk{{Size: 1, FrameOffset: 50, FrameEnd: 60}}},
		{Name: "l", Type: toc.TypeSymlink, LinkName: "a", UserName: "u", GroupName: "g"},
		{Name: "h", Type: toc.TypeHardlink, LinkName: "a"},
		{Name: "dev", Type: toc.TypeChar, DevMajor: 1, DevMinor: 3, UserName: "root"},
		{Name: "a", Type: toc.TypeFIFO},
	}
	in := &toc.TOC{Format: toc.FormatZstdChunked, Entries: entries, Digest: sum, PrefetchEnd: 9, ChunkSize: 4, TarSplitDigest: other}
	r := newRecords(in, packNames(entries))
	if got := r.toc(); !reflect.DeepEqual(got, in) {
		for i := range entries {
			if !reflect.DeepEqual(got.Entries[i], entries[i]) {
				t.Errorf("entry %d: got %+v, want %+v", i, got.Entries[i], entries[i])
			}
		}
		t.Fatalf("rebuilt TOC differs")
	}
	if r.entry(1) != r.toc().Entries[1] {
		t.Error("an entry was built twice")
	}
}

// TestTOCEqualsDecoded checks that Layer.TOC is the TOC the decoders
// return, for both formats, and that FileInfo.Sys hands out its entries.
func TestTOCEqualsDecoded(t *testing.T) {
	input, err := tartest.WriteTar(tartest.SmallKinds())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked} {
		var buf bytes.Buffer
		if _, err := writer.Build(context.Background(), &buf, bytes.NewReader(input), writer.WithFormat(f)); err != nil {
			t.Fatal(err)
		}
		blob := buf.Bytes()
		footer, err := parseFooter(blob[len(blob)-toc.MaxFooterSize:])
		if err != nil {
			t.Fatal(err)
		}
		var want *toc.TOC
		if f == toc.FormatEStargz {
			want, err = estargz.Decode(blob[footer.TOCOffset:len(blob)-footer.Size], footer.TOCOffset)
		} else {
			var tarSplit digest.Digest
			want, tarSplit, err = zstdchunked.Decode(blob[footer.TOCOffset:footer.TOCOffset+footer.TOCLength], footer)
			if err == nil {
				want.TarSplitDigest = tarSplit
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		l, err := openBlob(blob)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if !reflect.DeepEqual(l.TOC(), want) {
			t.Fatalf("%v: Layer.TOC is not the decoded TOC", f)
		}
		last := make(map[string]*toc.Entry)
		for _, e := range l.TOC().Entries {
			last[e.Name] = e
		}
		for name, e := range last {
			if name == "." || isLandmark(e) {
				continue
			}
			fi, err := l.Lstat(name)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Sys() != any(e) {
				t.Errorf("%v: Sys of %q is not the TOC's entry", f, name)
			}
		}
	}
}
