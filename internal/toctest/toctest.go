// Package toctest holds what the tests of toc's codecs share: random
// model TOCs, the comparison of two decoders, the invariants a decoded TOC
// keeps and golden-file reading. Only tests import it.
package toctest

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/internal/tocjson"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// FuzzLimits are the decoding limits of the fuzz targets that compare two
// decoders: low enough that small inputs reach every limit, high enough
// for the golden TOCs.
var FuzzLimits = []toc.DecodeOption{
	toc.WithMaxEntries(64), toc.WithMaxTOCSize(1 << 20),
	toc.WithMaxNameLength(256), toc.WithMaxPathDepth(16), toc.WithMaxImpliedDirs(16), toc.WithMaxNameBytes(4 << 10),
}

// CheckSameDecoding fails t unless a TOC decoded through the fast scanner
// and through encoding/json came out the same: both failed with the same
// error, or both succeeded with equal results (same reports that).
func CheckSameDecoding(t testing.TB, fastErr, slowErr error, same bool, fast, slow any) {
	t.Helper()
	switch {
	case (fastErr == nil) != (slowErr == nil):
		t.Fatalf("fast path error %v, encoding/json error %v", fastErr, slowErr)
	case errors.Is(fastErr, toc.ErrTOCTooLarge) || errors.Is(slowErr, toc.ErrTOCTooLarge):
		// The scanner stops at the entry limit, possibly before an error
		// encoding/json reports.
	case fastErr != nil && fastErr.Error() != slowErr.Error():
		t.Fatalf("errors differ:\nfast: %v\njson: %v", fastErr, slowErr)
	case fastErr == nil && !same:
		t.Fatalf("TOCs differ:\nfast: %+v\njson: %+v", fast, slow)
	}
}

// CheckTOCInvariants fails t unless every entry of index has a valid
// io/fs name, regular files tile their chunks, and every chunk's frame
// lies before tocOffset.
func CheckTOCInvariants(t testing.TB, index *toc.TOC, tocOffset int64) {
	t.Helper()
	for _, e := range index.Entries {
		if !fs.ValidPath(e.Name) {
			t.Fatalf("entry name %q is not a valid io/fs path", e.Name)
		}
		if e.Type == toc.TypeHardlink && !fs.ValidPath(e.LinkName) {
			t.Fatalf("hardlink target %q is not a valid io/fs path", e.LinkName)
		}
		if err := tocjson.CheckChunkTiling(e); e.Type == toc.TypeReg && err != nil {
			t.Fatal(err)
		}
		for _, c := range e.Chunks {
			if c.FrameOffset < 0 || c.FrameOffset >= c.FrameEnd || c.FrameEnd > tocOffset || c.InnerOffset < 0 {
				t.Fatalf("entry %q: chunk frame out of range: %+v (tocOffset %d)", e.Name, c, tocOffset)
			}
		}
	}
}

// BytesAllocated reports how many heap bytes f allocates.
func BytesAllocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// RandomTOC returns a valid model TOC with every entry type, chunked
// files, xattrs and awkward owner names, link targets and xattrs.
func RandomTOC(r *rand.Rand) *toc.TOC {
	t := &toc.TOC{Format: toc.FormatEStargz, ChunkSize: 1 + r.Int64N(8)}
	var offset int64
	for i := range r.IntN(12) {
		name := fmt.Sprintf("d%d/%s%d", r.IntN(3), []string{"f", "é", "日本", "a<b>&c", "🙂", "\u2028"}[r.IntN(6)], i)
		e := &toc.Entry{Name: name, Type: toc.EntryType(1 + r.IntN(int(toc.TypeFIFO))), Mode: r.Int64N(1 << 12),
			UID: r.IntN(3), GID: r.IntN(3), UserName: RandomString(r), GroupName: RandomString(r),
			DevMajor: r.Int64N(3), DevMinor: r.Int64N(3)}
		if r.IntN(2) == 0 {
			e.ModTime = time.Unix(r.Int64N(1<<33), r.Int64N(1e9))
		}
		if r.IntN(3) == 0 {
			e.Xattrs = map[string]string{RandomString(r): RandomString(r), "user.b": string(RandomBytes(r))}
		}
		switch e.Type {
		case toc.TypeSymlink:
			e.LinkName = RandomString(r)
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

// ReadGolden returns the file name of the test's testdata directory.
func ReadGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ReadGoldenFooter returns the golden blob name with its footer, as
// parse, a codec's ParseFooter, reads it.
func ReadGoldenFooter(t testing.TB, name string, parse func([]byte) (toc.Footer, error)) ([]byte, toc.Footer) {
	t.Helper()
	blob := ReadGolden(t, name)
	f, err := parse(blob)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return blob, f
}

// RandomString returns a concatenation of AwkwardStrings.
func RandomString(r *rand.Rand) string {
	var b []byte
	for range r.IntN(5) {
		b = append(b, AwkwardStrings[r.IntN(len(AwkwardStrings))]...)
	}
	return string(b)
}

// RandomBytes returns nil, an empty slice or up to 11 random bytes.
func RandomBytes(r *rand.Rand) []byte {
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

// AwkwardStrings are pieces of strings that encoding/json escapes or
// treats specially, mixed into generated names and values.
var AwkwardStrings = []string{
	"", "a", "usr/lib/x.so", " ", "<", ">", "&", `"`, `\`, "/", "\x00", "\x01", "\b", "\f", "\n", "\r", "\t",
	"\x1f", "\x7f", "\u0080", "é", "日本語", "🙂", "\u2028", "\u2029", "\ufffd", "\ufeff",
	"\xff", "\xc3", "\xe2\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "<script>&amp;</script>",
}
