package interop

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/interop/internal/corpus"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// TestReaderReadsReferenceBlobs builds eStargz blobs with the reference
// writer under many options and reads every entry back through our reader:
// content byte for byte (every chunk verified) and metadata. With -short
// it tests only the default gzip level; the other levels run in the full
// suite.
func TestReaderReadsReferenceBlobs(t *testing.T) {
	t.Parallel()
	kinds := corpus.KindsTar(t)
	want := tarState(t, kinds)
	for _, tc := range []struct {
		name     string
		opts     []estargz.Option
		fullOnly bool // another gzip level: the same reading code, other deflate blocks
	}{
		{name: "default"},
		{name: "chunk-64k", opts: []estargz.Option{estargz.WithChunkSize(64 << 10)}},
		{name: "chunk-1k", opts: []estargz.Option{estargz.WithChunkSize(1 << 10)}},
		{name: "min-chunk-16k", opts: []estargz.Option{estargz.WithMinChunkSize(16 << 10)}},
		{name: "min-chunk-1m-chunk-64k", opts: []estargz.Option{estargz.WithChunkSize(64 << 10), estargz.WithMinChunkSize(1 << 20)}},
		{name: "prioritized", opts: []estargz.Option{estargz.WithPrioritizedFiles([]string{"usr/lib/text.txt", "usr/bin/tool-hardlink", "etc/hostname"})}},
		{name: "level-1", opts: []estargz.Option{estargz.WithCompressionLevel(1)}, fullOnly: true},
		{name: "level-0", opts: []estargz.Option{estargz.WithCompressionLevel(0)}, fullOnly: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fullOnly && testing.Short() {
				t.Skip("another gzip level; -short tests the default one")
			}
			blob, tocDigest := referenceBlob(t, kinds, tc.opts...)
			l, err := reader.Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))), reader.WithTOCDigest(tocDigest))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if l.TOC().Digest != tocDigest {
				t.Errorf("TOC digest %s, reference says %s", l.TOC().Digest, tocDigest)
			}
			checkLayer(t, l, want)
		})
	}
}

// TestReaderReadsReferenceGoroot reads the Go toolchain tree back from a
// reference-built blob.
func TestReaderReadsReferenceGoroot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a blob of the whole Go toolchain")
	}
	t.Parallel()
	data := corpus.GorootBytes(t)
	blob, tocDigest := referenceGorootBlob(t)
	l, err := reader.Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))), reader.WithTOCDigest(tocDigest))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkLayer(t, l, tarState(t, data))
}

// TestReaderOpenRoundTrips checks how many requests Open makes: one when
// the tail hint covers the TOC, two when it does not.
func TestReaderOpenRoundTrips(t *testing.T) {
	t.Parallel()
	blob, tocDigest := referenceBlob(t, corpus.KindsTar(t))
	for _, tc := range []struct {
		hint  int64
		calls int64
	}{{0, 1}, {1 << 30, 1}, {100, 2}, {1, 2}} {
		f := &countingFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))}
		l, err := reader.Open(context.Background(), f, reader.WithTailHint(tc.hint), reader.WithTOCDigest(tocDigest))
		if err != nil {
			t.Fatalf("hint %d: %v", tc.hint, err)
		}
		l.Close()
		if got := f.calls.Load(); got != tc.calls {
			t.Errorf("hint %d: Open made %d requests, want %d", tc.hint, got, tc.calls)
		}
	}
	// A pinned digest that does not match is refused.
	_, err := reader.Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))),
		reader.WithTOCDigest(digest.FromString("another TOC")))
	if !errors.Is(err, reader.ErrTOCDigest) {
		t.Errorf("wrong TOC digest: error = %v", err)
	}
}

type countingFetcher struct {
	fetcher.Fetcher
	calls atomic.Int64
}

func (c *countingFetcher) Fetch(ctx context.Context, rs []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	c.calls.Add(1)
	return c.Fetcher.Fetch(ctx, rs, fn)
}

// referenceBlob builds tarData into an eStargz blob with the reference
// writer.
func referenceBlob(tb testing.TB, tarData []byte, opts ...estargz.Option) ([]byte, digest.Digest) {
	tb.Helper()
	blob, d, err := buildReferenceBlob(tarData, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return blob, d
}

func buildReferenceBlob(tarData []byte, opts ...estargz.Option) ([]byte, digest.Digest, error) {
	rc, err := estargz.Build(io.NewSectionReader(bytes.NewReader(tarData), 0, int64(len(tarData))), opts...)
	if err != nil {
		return nil, "", fmt.Errorf("estargz.Build: %w", err)
	}
	defer rc.Close()
	blob, err := io.ReadAll(rc)
	if err != nil {
		return nil, "", fmt.Errorf("estargz.Build: %w", err)
	}
	return blob, rc.TOCDigest(), nil
}

var referenceGoroot struct {
	once   sync.Once
	blob   []byte
	digest digest.Digest
	err    error
}

// referenceGorootBlob returns the reference writer's eStargz blob of the
// GOROOT tar, with default options. It is built once per process, for
// TestReaderReadsReferenceGoroot and the read benchmarks; callers must not
// modify it.
func referenceGorootBlob(tb testing.TB) ([]byte, digest.Digest) {
	tb.Helper()
	data := corpus.GorootBytes(tb)
	referenceGoroot.once.Do(func() {
		referenceGoroot.blob, referenceGoroot.digest, referenceGoroot.err = buildReferenceBlob(data)
	})
	if referenceGoroot.err != nil {
		tb.Fatalf("GOROOT: %v", referenceGoroot.err)
	}
	return referenceGoroot.blob, referenceGoroot.digest
}

// tarEntry is the final state of one name after extracting a tar.
type tarEntry struct {
	hdr     *tar.Header
	content []byte
}

// tarState replays a tar stream: cleaned names, last entry wins.
func tarState(tb testing.TB, data []byte) map[string]tarEntry {
	tb.Helper()
	state := make(map[string]tarEntry)
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return state
		}
		if err != nil {
			tb.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			tb.Fatal(err)
		}
		name := path.Clean("/" + h.Name)[1:]
		if name == "" {
			name = "."
		}
		state[name] = tarEntry{h, content}
	}
}

var tarTypes = map[byte]toc.EntryType{
	tar.TypeReg: toc.TypeReg, tar.TypeDir: toc.TypeDir, tar.TypeSymlink: toc.TypeSymlink,
	tar.TypeLink: toc.TypeHardlink, tar.TypeChar: toc.TypeChar, tar.TypeBlock: toc.TypeBlock, tar.TypeFifo: toc.TypeFIFO,
}

// checkLayer compares every name of want with what l shows, and checks
// that l shows no regular files, links or devices that want lacks.
func checkLayer(t *testing.T, l *reader.Layer, want map[string]tarEntry) {
	t.Helper()
	for name, te := range want {
		h := te.hdr
		fi, err := l.Lstat(name)
		if err != nil {
			t.Errorf("Lstat(%q): %v", name, err)
			continue
		}
		e := fi.Sys().(*toc.Entry)
		mtime := h.ModTime.Truncate(1e9).UTC()
		if mtime.Unix() == 0 {
			mtime = e.ModTime // the reference omits the Unix epoch
		}
		if e.Type != tarTypes[h.Typeflag] || e.UID != h.Uid || e.GID != h.Gid || !e.ModTime.Equal(mtime) ||
			e.Mode&0o7777 != h.Mode&0o7777 || e.DevMajor != h.Devmajor || e.DevMinor != h.Devminor {
			t.Errorf("%q: entry %+v does not match header %+v", name, e, h)
		}
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && e.Xattrs[x] != v {
				t.Errorf("%q: xattr %q = %q, want %q", name, x, e.Xattrs[x], v)
			}
		}
		switch h.Typeflag {
		case tar.TypeSymlink:
			if target, err := l.ReadLink(name); err != nil || target != h.Linkname {
				t.Errorf("ReadLink(%q) = %q, %v; want %q", name, target, err, h.Linkname)
			}
		case tar.TypeLink, tar.TypeReg:
			content := te.content
			if h.Typeflag == tar.TypeLink {
				content = want[path.Clean("/" + h.Linkname)[1:]].content
			}
			got, err := l.ReadFile(name)
			if err != nil || !bytes.Equal(got, content) {
				t.Errorf("ReadFile(%q) = %d bytes, %v; want %d bytes", name, len(got), err, len(content))
			}
		}
	}
	err := fs.WalkDir(l, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if _, ok := want[p]; !ok && !d.IsDir() {
			t.Errorf("layer shows %q, which the tar lacks", p)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}
