package reader

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
)

// deepName returns a clean name of depth elements.
func deepName(depth int) string {
	return strings.TrimSuffix(strings.Repeat("d/", depth), "/")
}

// tarOf returns a tar of the given headers; contents[i], if given, is
// the content of headers[i].
func tarOf(t testing.TB, headers []tar.Header, contents ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, h := range headers {
		h.Format = tar.FormatPAX
		if i < len(contents) {
			h.Size = int64(len(contents[i]))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if i < len(contents) {
			tw.Write(contents[i])
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// openNames writes a layer of the given headers in both formats, opens
// each, and returns Open's errors.
func openNames(t *testing.T, headers []tar.Header, opts ...Option) map[toc.Format]error {
	t.Helper()
	errs := make(map[toc.Format]error)
	for _, format := range []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked} {
		blob, _ := writerBlob(t, tarOf(t, headers), writer.WithFormat(format))
		l, err := openBlob(blob, opts...)
		if err == nil {
			l.Close()
		}
		errs[format] = err
	}
	return errs
}

// TestOpenBoundsNames opens layers of both formats whose names are at a
// limit, and one step past it.
func TestOpenBoundsNames(t *testing.T) {
	long := strings.Repeat("n", toc.DefaultMaxNameLength)
	dir := func(name string) tar.Header { return tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755} }
	fifo := func(name string) tar.Header { return tar.Header{Typeflag: tar.TypeFifo, Name: name, Mode: 0o644} }
	symlink := func(name, target string) tar.Header {
		return tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}
	}
	for _, tc := range []struct {
		name    string
		headers []tar.Header
		opts    []Option
		want    error // nil: opens
	}{
		{"depth at limit", []tar.Header{dir(deepName(toc.DefaultMaxPathDepth))}, nil, nil},
		{"depth past limit", []tar.Header{dir(deepName(toc.DefaultMaxPathDepth + 1))}, nil, toc.ErrInvalidTOC},
		{"lowered depth", []tar.Header{fifo("a/b/c")}, []Option{WithMaxPathDepth(2)}, toc.ErrInvalidTOC},
		{"length at limit", []tar.Header{fifo(long)}, nil, nil},
		{"length past limit", []tar.Header{fifo(long + "n")}, nil, toc.ErrInvalidTOC},
		{"lowered length", []tar.Header{fifo("abcd")}, []Option{WithMaxNameLength(3)}, toc.ErrInvalidTOC},
		{"link target length", []tar.Header{symlink("l", long+"n")}, nil, toc.ErrInvalidTOC},
		{"link target depth", []tar.Header{symlink("l", deepName(toc.DefaultMaxPathDepth+1))}, nil, toc.ErrInvalidTOC},
		// eStargz adds a landmark of 21 bytes.
		{"name bytes within limit", []tar.Header{fifo(strings.Repeat("a", 60)), symlink("l", strings.Repeat("b", 40))}, []Option{WithMaxNameBytes(200)}, nil},
		{"name bytes past limit", []tar.Header{fifo(strings.Repeat("a", 60)), symlink("l", strings.Repeat("b", 40))}, []Option{WithMaxNameBytes(100)}, toc.ErrTOCTooLarge},
		{"implied at limit", []tar.Header{fifo("a/b/c/f")}, []Option{WithMaxImpliedDirs(3)}, nil},
		{"implied past limit", []tar.Header{fifo("a/b/c/d/f")}, []Option{WithMaxImpliedDirs(3)}, toc.ErrTOCTooLarge},
		{"listed dirs", []tar.Header{dir("a"), dir("a/b"), dir("a/b/c"), dir("a/b/c/d"), fifo("a/b/c/d/f")}, []Option{WithMaxImpliedDirs(1)}, nil},
	} {
		for format, err := range openNames(t, tc.headers, tc.opts...) {
			if tc.want == nil && err != nil || tc.want != nil && !(errors.Is(err, tc.want) && errors.Is(err, ErrCorrupt)) {
				t.Errorf("%s, %v: error %v, want %v", tc.name, format, err, tc.want)
			}
		}
	}
}

// TestOpenRejectsHostileNamesCheaply opens layers of a few KiB whose one
// name is 400,000 levels deep (as deep as a tar header allows): Open
// fails without allocating more than a small multiple of the index, where
// building the tree took hundreds of MiB and about a second.
func TestOpenRejectsHostileNamesCheaply(t *testing.T) {
	headers := []tar.Header{{Typeflag: tar.TypeDir, Name: deepName(400_000), Mode: 0o755}}
	for _, format := range []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked} {
		blob, _ := writerBlob(t, tarOf(t, headers), writer.WithFormat(format))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		l, err := openBlob(blob)
		runtime.ReadMemStats(&after)
		if err == nil {
			l.Close()
		}
		if !errors.Is(err, ErrCorrupt) || !errors.Is(err, toc.ErrInvalidTOC) {
			t.Errorf("%v: error %v", format, err)
		} else if len(err.Error()) > 1024 {
			t.Errorf("%v: error of %d bytes", format, len(err.Error()))
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
			t.Errorf("%v: %d-byte blob: Open allocated %d MiB", format, len(blob), alloc>>20)
		}
	}
}

// TestTreeBoundsHandMadeTOC builds layers from TOCs made by hand, which no
// decoder checked: the tree holds them to the same limits.
func TestTreeBoundsHandMadeTOC(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []*toc.Entry
		opts    []Option
		want    error
	}{
		{"deep", []*toc.Entry{{Name: deepName(toc.DefaultMaxPathDepth + 1), Type: toc.TypeDir}}, nil, toc.ErrInvalidTOC},
		{"deep unclean", []*toc.Entry{{Name: "./" + deepName(toc.DefaultMaxPathDepth) + "/x", Type: toc.TypeDir}}, nil, toc.ErrInvalidTOC},
		{"long", []*toc.Entry{{Name: strings.Repeat("n", toc.DefaultMaxNameLength+1), Type: toc.TypeFIFO}}, nil, toc.ErrInvalidTOC},
		{"long link", []*toc.Entry{{Name: "l", Type: toc.TypeSymlink, LinkName: strings.Repeat("n", toc.DefaultMaxNameLength+1)}}, nil, toc.ErrInvalidTOC},
		{"deep link", []*toc.Entry{{Name: "l", Type: toc.TypeHardlink, LinkName: deepName(toc.DefaultMaxPathDepth + 1)}}, nil, toc.ErrInvalidTOC},
		{"name bytes", []*toc.Entry{{Name: "aaaa", Type: toc.TypeFIFO}, {Name: "bbbbbbb", Type: toc.TypeFIFO}}, []Option{WithMaxNameBytes(10)}, toc.ErrTOCTooLarge},
		// A directory replaced by a file is implied again by the names
		// below it: the tree counts what it creates.
		{"implied", []*toc.Entry{
			{Name: "a/b", Type: toc.TypeFIFO}, {Name: "a", Type: toc.TypeFIFO}, {Name: "a/c", Type: toc.TypeFIFO},
		}, []Option{WithMaxImpliedDirs(1)}, toc.ErrTOCTooLarge},
	} {
		_, err := newLayer(context.Background(), nil, &toc.TOC{Format: toc.FormatEStargz, Entries: tc.entries}, 0, newConfig(tc.opts))
		if !errors.Is(err, tc.want) || !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
	}
}

// treeLayer returns a layer of the given entries, all without content.
func treeLayer(t *testing.T, entries []*toc.Entry) *Layer {
	t.Helper()
	l, err := newLayer(context.Background(), nil, &toc.TOC{Format: toc.FormatEStargz, Entries: entries}, 0, newConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestWalkIsLinear walks a tree as deep as the limits allow, a directory
// and a file at each level: resolving each directory from the root would
// take steps quadratic in the depth, while starting from the directory
// resolved before takes a few per entry.
func TestWalkIsLinear(t *testing.T) {
	var entries []*toc.Entry
	for depth := 1; depth < toc.DefaultMaxPathDepth; depth++ {
		entries = append(entries,
			&toc.Entry{Name: deepName(depth), Type: toc.TypeDir, Mode: 0o755},
			&toc.Entry{Name: deepName(depth-1) + "/f", Type: toc.TypeFIFO, Mode: 0o644})
	}
	l := treeLayer(t, entries)
	var steps atomic.Int64
	l.lookups = &steps
	walked := 0
	err := fs.WalkDir(l, ".", func(name string, d fs.DirEntry, err error) error {
		walked++
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if walked != len(entries)+1 {
		t.Errorf("walked %d names, want %d", walked, len(entries)+1)
	}
	if got, limit := steps.Load(), int64(3*walked); got > limit {
		t.Errorf("walking %d names took %d lookup steps, want at most %d", walked, got, limit)
	}
}

// TestLookupFromHintMatchesLookupFromRoot looks names up in random order,
// each after another that leaves a different starting point, and compares
// what is found with a lookup from the root.
func TestLookupFromHintMatchesLookupFromRoot(t *testing.T) {
	l, _, _ := sampleLayer(t, false)
	var names []string
	fs.WalkDir(l, ".", func(name string, d fs.DirEntry, err error) error {
		names = append(names, name, name+"/x", name+"x")
		return nil
	})
	names = append(names, "usr/bin/up/hostname", "usr/bin/up/../x", "usr/bin/rel", "usr/b", "us", "usr/bin/abs/x")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		name := names[rng.IntN(len(names))]
		follow := rng.IntN(2) == 0
		got, gotErr := l.lookup(name, follow)
		l.hint.Store(nil)
		want, wantErr := l.lookup(name, follow)
		if got != want || (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("lookup(%q, %v) = %v, %v; from the root %v, %v", name, follow, got, gotErr, want, wantErr)
		}
		l.lookup(names[rng.IntN(len(names))], true) // a new starting point
	}
}
