package interop

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/klauspost/compress/gzip"
	"github.com/lazylayer/lazylayer/interop/internal/corpus"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
	"github.com/opencontainers/go-digest"
)

// TestWriterBlobsOpenWithReference builds blobs from the all-kinds tree
// under several layouts and checks that the reference reader opens them,
// verifies them against our TOC digest and reads every entry back exactly.
// With -short it tests only the default gzip level; level 1 runs in the
// full suite.
func TestWriterBlobsOpenWithReference(t *testing.T) {
	t.Parallel()
	input := corpus.KindsTar(t)
	for _, tc := range []struct {
		name string
		opts []writer.Option
		// sharedMembers: the reference VerifyTOC refuses blobs whose
		// members hold several chunks (it keys digests by member offset).
		sharedMembers bool
		fullOnly      bool // another gzip level: the same checks on other deflate blocks
	}{
		{name: "default"},
		{name: "prioritized", opts: []writer.Option{writer.WithPrioritizedFiles([]string{
			"usr/bin/sh", "/etc/hostname", "./usr/bin/tool-hardlink", "usr/lib/big.bin"})}},
		{name: "chunk-64KiB", opts: []writer.Option{writer.WithChunkSize(64 << 10)}},
		{name: "chunk-1000-prioritized", opts: []writer.Option{writer.WithChunkSize(1000),
			writer.WithPrioritizedFiles([]string{"usr/lib/text.txt"})}},
		{name: "min-chunk-256KiB", sharedMembers: true, opts: []writer.Option{
			writer.WithChunkSize(1 << 20), writer.WithMinChunkSize(256 << 10)}},
		{name: "level-1", opts: []writer.Option{writer.WithCompressionLevel(1)}, fullOnly: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fullOnly && testing.Short() {
				t.Skip("another gzip level; -short tests the default one")
			}
			blob, res := buildBlob(t, input, tc.opts...)
			checkAgainstReference(t, blob, res, input, tc.sharedMembers)
		})
	}
}

// TestWriterGorootWithReference does the same on the Go toolchain tree,
// a large realistic layer.
func TestWriterGorootWithReference(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a blob of the whole GOROOT")
	}
	t.Parallel()
	input := corpus.GorootBytes(t)
	blob, res := buildBlob(t, input, writer.WithPrioritizedFiles([]string{"bin/go", "src/runtime/proc.go", "VERSION"}))
	checkAgainstReference(t, blob, res, input, false)
}

func buildBlob(t *testing.T, input []byte, opts ...writer.Option) ([]byte, *writer.Result) {
	t.Helper()
	var blob bytes.Buffer
	res, err := writer.Build(context.Background(), &blob, bytes.NewReader(input), opts...)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if res.Size != int64(blob.Len()) || res.Digest != digest.FromBytes(blob.Bytes()) {
		t.Fatalf("Result says %d bytes %s, blob is %d bytes %s", res.Size, res.Digest, blob.Len(), digest.FromBytes(blob.Bytes()))
	}
	return blob.Bytes(), res
}

func checkAgainstReference(t *testing.T, blob []byte, res *writer.Result, input []byte, sharedMembers bool) {
	t.Helper()
	r, err := estargz.Open(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))))
	if err != nil {
		t.Fatalf("estargz.Open: %v", err)
	}
	if _, err := r.VerifyTOC(res.TOCDigest); sharedMembers {
		if err == nil || !strings.Contains(err.Error(), "found twice") {
			t.Fatalf("reference VerifyTOC on shared members: got %v, want its known 'offset found twice' refusal", err)
		}
	} else if err != nil {
		t.Fatalf("reference VerifyTOC: %v", err)
	}
	// The reference sees our landmark where we say the prefetch region ends.
	if lm, ok := r.Lookup(estargz.PrefetchLandmark); ok {
		if lm.Offset != res.TOC().PrefetchEnd {
			t.Errorf("reference sees %s at offset %d, Result.TOC.PrefetchEnd is %d", estargz.PrefetchLandmark, lm.Offset, res.TOC().PrefetchEnd)
		}
	} else if _, ok := r.Lookup(estargz.NoPrefetchLandmark); !ok || !res.TOC().NoPrefetch {
		t.Errorf("reference finds no landmark (NoPrefetch %v)", res.TOC().NoPrefetch)
	}
	if got, want := res.Annotations[estargz.TOCJSONDigestAnnotation], res.TOCDigest.String(); got != want {
		t.Errorf("TOC digest annotation %q, want %q", got, want)
	}

	// The whole blob gunzips to a tar stream whose digest is the DiffID.
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, zr)
	if err != nil {
		t.Fatalf("gunzip blob: %v", err)
	}
	if d := digest.NewDigest(digest.SHA256, h); d != res.DiffID || n != res.UncompressedSize {
		t.Errorf("gunzipped blob is %d bytes %s; Result says %d bytes %s", n, d, res.UncompressedSize, res.DiffID)
	}
	if got := res.Annotations[estargz.StoreUncompressedSizeAnnotation]; got != fmt.Sprint(n) {
		t.Errorf("uncompressed size annotation %q, want %d", got, n)
	}

	// Every input entry reads back through the reference reader, with its
	// metadata; the last occurrence of a name wins, as in tar.
	tr := tar.NewReader(bytes.NewReader(input))
	want := make(map[string]*tar.Header)
	contents := make(map[string][]byte)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		want[name] = hdr
		if hdr.Typeflag == tar.TypeReg {
			if contents[name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, hdr := range want {
		if name == "" {
			continue // the root: the reference reader synthesises it
		}
		e, ok := r.Lookup(name)
		if !ok {
			t.Errorf("%q: not found by the reference reader", name)
			continue
		}
		if hdr.Typeflag == tar.TypeLink {
			// The reference resolves a hardlink to the entry it names.
			if target, ok := r.Lookup(hdr.Linkname); !ok || target != e {
				t.Errorf("%q: hardlink does not resolve to %q", name, hdr.Linkname)
			}
			continue
		}
		if err := sameMetadata(e, hdr); err != nil {
			t.Errorf("%q: %v", name, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		sr, err := r.OpenFile(name)
		if err != nil {
			t.Errorf("%q: OpenFile: %v", name, err)
			continue
		}
		got, err := io.ReadAll(io.NewSectionReader(sr, 0, sr.Size()))
		if err != nil || !bytes.Equal(got, contents[name]) {
			t.Errorf("%q: read back %d bytes (err %v), want the %d input bytes", name, len(got), err, len(contents[name]))
		}
	}
	checkChunkDigests(t, blob, res.TOC())
}

func sameMetadata(e *estargz.TOCEntry, h *tar.Header) error {
	types := map[byte]string{tar.TypeReg: "reg", tar.TypeDir: "dir", tar.TypeSymlink: "symlink",
		tar.TypeChar: "char", tar.TypeBlock: "block", tar.TypeFifo: "fifo"}
	var errs []error
	check := func(what string, got, want any) {
		if got != want {
			errs = append(errs, fmt.Errorf("%s %v, want %v", what, got, want))
		}
	}
	check("type", e.Type, types[h.Typeflag])
	check("mode", e.Mode, h.Mode)
	check("uid", e.UID, h.Uid)
	check("gid", e.GID, h.Gid)
	if h.Typeflag == tar.TypeReg {
		check("size", e.Size, h.Size)
	}
	switch h.Typeflag {
	case tar.TypeSymlink:
		check("link", e.LinkName, h.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		check("devmajor", int64(e.DevMajor), h.Devmajor)
		check("devminor", int64(e.DevMinor), h.Devminor)
	}
	if !h.ModTime.IsZero() {
		check("modtime", e.ModTime().Unix(), h.ModTime.Round(1e9).Unix())
	}
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			check("xattr "+name, string(e.Xattrs[name]), v)
		}
	}
	return errors.Join(errs...)
}

// checkChunkDigests decompresses every chunk from its member, as a lazy
// reader would, and checks it against its digest: this covers the
// shared-member layouts the reference cannot verify.
func checkChunkDigests(t *testing.T, blob []byte, tc *toc.TOC) {
	t.Helper()
	for _, e := range tc.Entries {
		for i, c := range e.Chunks {
			zr, err := gzip.NewReader(bytes.NewReader(blob[c.FrameOffset:c.FrameEnd]))
			if err != nil {
				t.Fatalf("%q chunk %d: %v", e.Name, i, err)
			}
			zr.Multistream(false)
			if _, err := io.CopyN(io.Discard, zr, c.InnerOffset); err != nil {
				t.Fatalf("%q chunk %d: skipping %d bytes: %v", e.Name, i, c.InnerOffset, err)
			}
			h := sha256.New()
			if _, err := io.CopyN(h, zr, c.Size); err != nil {
				t.Fatalf("%q chunk %d: %v", e.Name, i, err)
			}
			if d := digest.NewDigest(digest.SHA256, h); d != c.Digest {
				t.Fatalf("%q chunk %d: digest %s, TOC says %s", e.Name, i, d, c.Digest)
			}
		}
	}
}

// TestWriterSparseFilesWithReference checks that the reference reader
// reads the sparse files of GNU and PAX sparse tars, which our eStargz
// writer expands, as the expanded files, verified against our TOC digest;
// and that zstd:chunked refuses them rather than write a blob that does
// not decompress to its input (containers/storage's compressor refuses
// old GNU sparse files and writes PAX ones corrupt).
func TestWriterSparseFilesWithReference(t *testing.T) {
	t.Parallel()
	want := make([]byte, 1<<20)
	copy(want[300000:], "hello")
	copy(want[900000:], "world")
	for _, name := range []string{"sparse-gnu.tar", "sparse-pax.tar"} {
		t.Run(name, func(t *testing.T) {
			input, err := os.ReadFile(filepath.Join("..", "writer", "testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			blob, res := buildBlob(t, input)
			r, err := estargz.Open(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))))
			if err != nil {
				t.Fatalf("estargz.Open: %v", err)
			}
			if _, err := r.VerifyTOC(res.TOCDigest); err != nil {
				t.Fatalf("reference VerifyTOC: %v", err)
			}
			sr, err := r.OpenFile("sparse")
			if err != nil {
				t.Fatalf("reference OpenFile: %v", err)
			}
			got, err := io.ReadAll(io.NewSectionReader(sr, 0, sr.Size()))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("reference reads %d bytes (err %v), want the %d-byte expanded file", len(got), err, len(want))
			}
			_, err = writer.Build(context.Background(), io.Discard, bytes.NewReader(input), writer.WithFormat(toc.FormatZstdChunked))
			if !errors.Is(err, writer.ErrUnsupportedEntry) {
				t.Errorf("zstd:chunked: error %v, want ErrUnsupportedEntry", err)
			}
		})
	}
}
