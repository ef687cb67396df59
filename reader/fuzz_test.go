package reader

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// FuzzOpenAndReadAll opens arbitrary bytes as a layer blob and reads every
// file. Nothing may panic or hang, and every byte a read returns must be
// what the index vouches for. The seed corpus (testdata/fuzz) holds small
// reference-built blobs and damaged copies of them; the interop module's
// TestWriteReaderFuzzSeeds regenerates it.
func FuzzOpenAndReadAll(f *testing.F) {
	f.Fuzz(func(t *testing.T, blob []byte) {
		l := openFuzzed(t, blob)
		if l == nil {
			return
		}
		defer l.Close()
		readFuzzed(t, l, func(p string, data []byte, e *toc.Entry) {
			for i, c := range e.Chunks {
				if c.Size > 0 && digest.FromBytes(data[c.Offset:c.Offset+c.Size]) != chunkDigest(e, i) {
					t.Fatalf("%s: chunk %d returned unverified bytes", p, i)
				}
			}
		})
	})
}

// readFuzzed reads every regular file of l and hands check what reads
// returned whole, with the file's content entry.
func readFuzzed(t *testing.T, l *Layer, check func(p string, data []byte, e *toc.Entry)) {
	fs.WalkDir(l, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fs.ReadLink(l, p)
		fi, err := l.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		data, err := l.ReadFile(p)
		if err != nil {
			return nil
		}
		e := contentEntry(t, l, p)
		if int64(len(data)) != e.Size {
			t.Fatalf("%s: read %d bytes of %d", p, len(data), e.Size)
		}
		check(p, data, e)
		return nil
	})
}

// contentEntry returns the entry whose content p shows.
func contentEntry(t *testing.T, l *Layer, p string) *toc.Entry {
	n, err := l.lookup(p, true)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return l.entry(n.content())
}

// openFuzzed opens blob as a fuzz target does: with small caps, and
// requiring that a failure match one of the package's sentinels. It
// returns nil when blob does not open.
func openFuzzed(t *testing.T, blob []byte) *Layer {
	t.Helper()
	l, err := Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))), WithMaxTOCSize(1<<20), WithTailHint(512))
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedFormat) && !errors.Is(err, ErrNotSeekable) {
			t.Fatalf("Open error matches no sentinel: %v", err)
		}
		return nil
	}
	return l
}
