package tocjson_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/toc/estargz"
	"github.com/lazylayer/lazylayer/toc/zstdchunked"
)

// nameEntry is a TOC JSON entry that both formats' decoders read alike.
type nameEntry struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	LinkName string `json:"linkName,omitempty"`
}

// decodeNames decodes a TOC of entries with every decoder: eStargz and
// zstd:chunked, in memory and as it arrives. The decoders must agree;
// it returns their error.
func decodeNames(t *testing.T, entries []nameEntry, opts ...toc.DecodeOption) error {
	t.Helper()
	js, err := json.Marshal(map[string]any{"version": 1, "entries": entries})
	if err != nil {
		t.Fatal(err)
	}
	var member bytes.Buffer
	if err := estargz.WriteTOCMember(&member, js, 1); err != nil {
		t.Fatal(err)
	}
	compressed, err := zstdchunked.CompressFrame(js, 1)
	if err != nil {
		t.Fatal(err)
	}
	footer := toc.Footer{Format: toc.FormatZstdChunked, TOCOffset: 1 << 20, TOCLength: int64(len(compressed)), TOCUncompressedLength: int64(len(js))}
	_, estargzErr := estargz.Decode(member.Bytes(), 1<<20, opts...)
	_, _, estargzFromErr := estargz.DecodeFrom(bytes.NewReader(member.Bytes()), 1<<20, opts...)
	_, _, zstdErr := zstdchunked.Decode(compressed, footer, opts...)
	_, _, zstdFromErr := zstdchunked.DecodeFrom(bytes.NewReader(compressed), footer, opts...)
	errs := []error{estargzErr, estargzFromErr, zstdErr, zstdFromErr}
	for _, err := range errs[1:] {
		if fmt.Sprint(err) != fmt.Sprint(errs[0]) {
			t.Fatalf("decoders disagree: %q", errs)
		}
	}
	return errs[0]
}

// deepName returns a clean name of depth elements.
func deepName(depth int) string {
	return strings.TrimSuffix(strings.Repeat("d/", depth), "/")
}

// TestNameLimits decodes, with every decoder, indexes whose names or link
// targets are exactly at a limit and one step past it.
func TestNameLimits(t *testing.T) {
	long := strings.Repeat("n", toc.DefaultMaxNameLength)
	for _, tc := range []struct {
		name    string
		entries []nameEntry
		opts    []toc.DecodeOption
		want    error // nil: decodes
	}{
		{"depth at limit", []nameEntry{{Name: deepName(toc.DefaultMaxPathDepth), Type: "dir"}}, nil, nil},
		{"depth past limit", []nameEntry{{Name: deepName(toc.DefaultMaxPathDepth + 1), Type: "dir"}}, nil, toc.ErrInvalidTOC},
		{"depth counted clean", []nameEntry{{Name: "./" + deepName(toc.DefaultMaxPathDepth) + "/", Type: "dir"}}, nil, nil},
		{"lowered depth", []nameEntry{{Name: "a/b/c", Type: "fifo"}}, []toc.DecodeOption{toc.WithMaxPathDepth(2)}, toc.ErrInvalidTOC},
		{"length at limit", []nameEntry{{Name: long, Type: "fifo"}}, nil, nil},
		{"length past limit", []nameEntry{{Name: long + "n", Type: "fifo"}}, nil, toc.ErrInvalidTOC},
		{"length before cleaning", []nameEntry{{Name: "./" + long, Type: "fifo"}}, nil, toc.ErrInvalidTOC},
		{"symlink target length", []nameEntry{{Name: "l", Type: "symlink", LinkName: long + "n"}}, nil, toc.ErrInvalidTOC},
		{"symlink target depth", []nameEntry{{Name: "l", Type: "symlink", LinkName: strings.Repeat("../", toc.DefaultMaxPathDepth) + "x"}}, nil, toc.ErrInvalidTOC},
		{"hardlink target depth", []nameEntry{{Name: "l", Type: "hardlink", LinkName: deepName(toc.DefaultMaxPathDepth + 1)}}, nil, toc.ErrInvalidTOC},
		{"name bytes at limit", []nameEntry{{Name: "aaaa", Type: "fifo"}, {Name: "l", Type: "symlink", LinkName: "bbbbb"}}, []toc.DecodeOption{toc.WithMaxNameBytes(10)}, nil},
		{"name bytes past limit", []nameEntry{{Name: "aaaa", Type: "fifo"}, {Name: "l", Type: "symlink", LinkName: "bbbbbb"}}, []toc.DecodeOption{toc.WithMaxNameBytes(10)}, toc.ErrTOCTooLarge},
		{"implied at limit", []nameEntry{{Name: "a/b/c/f", Type: "fifo"}}, []toc.DecodeOption{toc.WithMaxImpliedDirs(3)}, nil},
		{"implied past limit", []nameEntry{{Name: "a/b/c/d/f", Type: "fifo"}}, []toc.DecodeOption{toc.WithMaxImpliedDirs(3)}, toc.ErrTOCTooLarge},
		{"listed dirs imply nothing", []nameEntry{
			{Name: "a", Type: "dir"}, {Name: "a/b", Type: "dir"}, {Name: "a/b/c", Type: "dir"}, {Name: "a/b/c/d", Type: "dir"},
			{Name: "a/b/c/d/f", Type: "fifo"}, {Name: "a/b/c/d/h", Type: "fifo"}, {Name: "a/b/g", Type: "fifo"},
		}, []toc.DecodeOption{toc.WithMaxImpliedDirs(1)}, nil},
		{"siblings imply their parents once", []nameEntry{
			{Name: "a/b/f", Type: "fifo"}, {Name: "a/b/g", Type: "fifo"}, {Name: "a/c/h", Type: "fifo"},
		}, []toc.DecodeOption{toc.WithMaxImpliedDirs(3)}, nil},
		{"returning to a directory counts again", []nameEntry{
			{Name: "a/b/f", Type: "fifo"}, {Name: "x/f", Type: "fifo"}, {Name: "a/b/g", Type: "fifo"},
		}, []toc.DecodeOption{toc.WithMaxImpliedDirs(4)}, toc.ErrTOCTooLarge},
	} {
		err := decodeNames(t, tc.entries, tc.opts...)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestHostileNamesCostLittle decodes an index whose single name is a
// million levels deep, in a TOC of 2 MiB that compresses to a few KiB:
// every decoder rejects it without allocating more than a few times the
// TOC, and the error quotes the name only in part.
func TestHostileNamesCostLittle(t *testing.T) {
	entries := []nameEntry{{Name: deepName(1 << 20), Type: "dir"}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := decodeNames(t, entries)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, toc.ErrInvalidTOC) {
		t.Fatalf("error %v, want ErrInvalidTOC", err)
	}
	if len(err.Error()) > 1024 {
		t.Errorf("error of %d bytes", len(err.Error()))
	}
	// Four decoders, each holding the TOC JSON, its name, and the
	// compressed forms: well under 64 MiB. The tree a reader would build
	// from it costs hundreds.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("decoding allocated %d MiB", alloc>>20)
	}
}
