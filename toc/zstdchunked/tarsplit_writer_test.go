package zstdchunked

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/lazylayer/lazylayer/internal/toctest"
	"github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/tar/storage"
)

// TestTarSplitWriterRefusesRepeatedNames checks that a name recorded
// twice, as tar-split's readers refuse it (cleaned: "./a" is "a"), fails
// Close, in the same page of names or in pages far apart, and that
// thousands of distinct names do not.
func TestTarSplitWriterRefusesRepeatedNames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		names []string
		err   error
	}{
		{"distinct", manyNames(3*namesPage + 7), nil},
		{"same page", []string{"a", "b", "./a"}, storage.ErrDuplicatePath},
		{"pages apart", append(manyNames(3*namesPage), "d/f000005"), storage.ErrDuplicatePath},
		{"last pages", append(append(manyNames(namesPage), "x"), "x"), storage.ErrDuplicatePath},
		{"absolute differs", []string{"/a", "a"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := NewTarSplitWriter(io.Discard, 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range tc.names {
				if err := w.AddFile(n, 0, nil); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Errorf("Close: %v, want %v", err, tc.err)
			}
		})
	}
}

func manyNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("d/f%06d", i)
	}
	return names
}

// TestTarSplitWriterMatchesPacker checks that the writer's records are
// those of tar-split's own JSON packer, byte for byte.
func TestTarSplitWriterMatchesPacker(t *testing.T) {
	var want bytes.Buffer
	p := storage.NewJSONPacker(&want)
	var got bytes.Buffer
	w, err := NewTarSplitWriter(&got, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a", "dir/ü<&>", "\xff\xfe", "b"} {
		seg := bytes.Repeat([]byte{byte(i), '<'}, 300)
		if _, err := p.AddEntry(storage.Entry{Type: storage.SegmentType, Payload: seg}); err != nil {
			t.Fatal(err)
		}
		e := storage.Entry{Type: storage.FileType, Size: int64(i), Payload: []byte{byte(i)}}
		e.SetName(name)
		if _, err := p.AddEntry(e); err != nil {
			t.Fatal(err)
		}
		if err := w.AddSegment(seg); err != nil {
			t.Fatal(err)
		}
		if err := w.AddFile(name, int64(i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	plain, err := DecompressTOC(got.Bytes(), int64(want.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain, want.Bytes()) {
		t.Errorf("tar-split records differ from tar-split's packer:\ngot  %q\nwant %q", plain, want.Bytes())
	}
}

// TestMarshalZstdChunkedMatchesJSON checks the streamed encoding against
// json.Marshal of the whole document, which containers/storage writes.
func TestMarshalZstdChunkedMatchesJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		tc := toctest.RandomTOC(r)
		if i == 0 {
			tc.Entries = nil
		}
		doc := zstdChunkedTOC{Version: zstdChunkedVersion, Entries: []*zstdChunkedEntry{}}
		for _, e := range tc.Entries {
			for j := range e.Chunks {
				e.Chunks[j].InnerOffset = 0
			}
			jes, err := zstdChunkedEntries(nil, e)
			if err != nil {
				t.Fatal(err)
			}
			for k := range jes {
				doc.Entries = append(doc.Entries, &jes[k])
			}
		}
		split := digest.Digest("")
		if i%2 == 1 {
			split = digest.FromString(fmt.Sprint(i))
		}
		doc.TarSplitDigest = split.String()
		want, err := json.Marshal(&doc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Marshal(tc, split)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Marshal and encoding/json differ:\ngot:  %q\nwant: %q", got, want)
		}
	}
}
