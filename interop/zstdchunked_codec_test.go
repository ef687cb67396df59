package interop

import (
	"archive/tar"
	"bytes"
	"io"
	"maps"
	"path"
	"strings"
	"sync"
	"testing"

	lzstdchunked "github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	storagecompressor "github.com/containers/storage/pkg/chunked/compressor"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"

	"github.com/lazylayer/lazylayer/interop/internal/corpus"
	"github.com/lazylayer/lazylayer/toc"
)

// zstdChunkedBlob is a blob written by a reference zstd:chunked writer and
// the annotations it produced.
type zstdChunkedBlob struct {
	blob        []byte
	annotations map[string]string
}

// storageBlobs caches, per corpus name, the blob containers/storage's
// compressor makes of it: several tests read the same blob, and the GOROOT
// one takes long to build.
var storageBlobs sync.Map // string → func() (zstdChunkedBlob, error)

// storageZstdChunked returns input, the corpus called name, compressed with
// containers/storage's zstd:chunked compressor (the one podman and buildah
// use). It is built once per process and name; callers must not modify it.
func storageZstdChunked(t *testing.T, name string, input []byte) zstdChunkedBlob {
	t.Helper()
	build, _ := storageBlobs.LoadOrStore(name, sync.OnceValues(func() (zstdChunkedBlob, error) {
		var out bytes.Buffer
		a := map[string]string{}
		w, err := storagecompressor.ZstdCompressor(&out, a, nil)
		if err != nil {
			return zstdChunkedBlob{}, err
		}
		if _, err := w.Write(input); err != nil {
			return zstdChunkedBlob{}, err
		}
		if err := w.Close(); err != nil {
			return zstdChunkedBlob{}, err
		}
		return zstdChunkedBlob{out.Bytes(), a}, nil
	}))
	ref, err := build.(func() (zstdChunkedBlob, error))()
	if err != nil {
		t.Fatalf("containers/storage compressor on %s: %v", name, err)
	}
	return ref
}

// zstdCompression is the estargz.Compression of stargz-snapshotter's
// zstd:chunked writer.
type zstdCompression struct {
	*zstdchunked.Compressor
	*zstdchunked.Decompressor
}

// estargzZstdChunked builds input with estargz's zstdchunked compressor.
func estargzZstdChunked(t *testing.T, input []byte, opts ...estargz.Option) zstdChunkedBlob {
	t.Helper()
	a := map[string]string{}
	c := zstdCompression{&zstdchunked.Compressor{CompressionLevel: zstd.SpeedDefault, Metadata: a}, &zstdchunked.Decompressor{}}
	opts = append(opts, estargz.WithCompression(c))
	rc, err := estargz.Build(io.NewSectionReader(bytes.NewReader(input), 0, int64(len(input))), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	blob, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return zstdChunkedBlob{blob, a}
}

func TestZstdChunkedCodecReadsReferenceBlobs(t *testing.T) {
	t.Parallel()
	input := corpus.KindsTar(t)
	for _, tc := range []struct {
		name        string
		build       func(*testing.T, []byte) zstdChunkedBlob
		hasTarSplit bool
	}{
		{"containers-storage", func(t *testing.T, in []byte) zstdChunkedBlob {
			return storageZstdChunked(t, "kinds", in)
		}, true},
		{"estargz-zstdchunked", func(t *testing.T, in []byte) zstdChunkedBlob {
			return estargzZstdChunked(t, in, estargz.WithChunkSize(64<<10))
		}, false},
		{"estargz-zstdchunked-minchunk", func(t *testing.T, in []byte) zstdChunkedBlob {
			return estargzZstdChunked(t, in, estargz.WithChunkSize(64<<10), estargz.WithMinChunkSize(32<<10),
				estargz.WithPrioritizedFiles([]string{"etc/hostname", "usr/bin/tool"}))
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := tc.build(t, input)
			checkZstdChunkedBlob(t, ref, input, tc.hasTarSplit)
		})
	}
}

// checkZstdChunkedBlob decodes a reference blob with the toc codec the way
// a lazy reader would and checks every piece against the original tar.
func checkZstdChunkedBlob(t *testing.T, ref zstdChunkedBlob, input []byte, hasTarSplit bool) {
	t.Helper()
	blob := ref.blob

	// A plain zstd reader sees a tar (skippable frames skipped): the
	// original one from containers/storage, a rearranged one with landmark
	// files from estargz.
	zr, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	// DecodeAll grows its output by one frame at a time, copying it all
	// each time: room for the whole tar keeps a GOROOT blob's thousands of
	// frames from costing seconds of memmove.
	plain, err := zr.DecodeAll(blob, make([]byte, 0, len(input)+1<<20))
	if err != nil {
		t.Fatalf("plain zstd decoding: %v", err)
	}
	if hasTarSplit && !bytes.Equal(plain, input) {
		t.Fatalf("plain zstd decoding yields %d bytes that differ from the %d-byte input", len(plain), len(input))
	}

	f, err := lzstdchunked.ParseFooter(blob[len(blob)-toc.MaxFooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	if f.Format != toc.FormatZstdChunked {
		t.Fatalf("footer format %s", f.Format)
	}
	if err := lzstdchunked.CheckFooter(f, int64(len(blob))); err != nil {
		t.Fatal(err)
	}
	tocDigest, af, err := lzstdchunked.ParseAnnotations(ref.annotations)
	if err != nil {
		t.Fatal(err)
	}
	af.Size = f.Size
	if af != f {
		t.Fatalf("annotations say %+v, footer says %+v", af, f)
	}
	if hasTarSplit != (f.TarSplitOffset != 0) {
		t.Fatalf("footer %+v: tar-split expected: %v", f, hasTarSplit)
	}

	compressed, err := lzstdchunked.SkippableFramePayload(blob, 0, f.TOCOffset, f.TOCLength)
	if err != nil {
		t.Fatal(err)
	}
	tc, tarSplitDigest, err := lzstdchunked.Decode(compressed, f)
	if err != nil {
		t.Fatal(err)
	}
	if tc.Digest != tocDigest {
		t.Fatalf("TOC digest %s, annotation pins %s", tc.Digest, tocDigest)
	}

	want := tarFiles(t, plain)
	checkZstdChunkDigests(t, zr, blob, tc, want)

	if hasTarSplit {
		checkStorageTOCShape(t, tc)
	} else {
		if tarSplitDigest != "" {
			t.Fatalf("TOC pins tar-split %s, but the blob has none", tarSplitDigest)
		}
		return
	}
	tsPayload, err := lzstdchunked.SkippableFramePayload(blob, 0, f.TarSplitOffset, f.TarSplitLength)
	if err != nil {
		t.Fatal(err)
	}
	r, err := lzstdchunked.NewTarSplitReader(tsPayload, tarSplitDigest)
	if err != nil {
		t.Fatal(err)
	}
	size, err := lzstdchunked.CheckTarSplit(r, tc)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(input)) {
		t.Fatalf("tar-split describes %d bytes, tar has %d", size, len(input))
	}
	r, err = lzstdchunked.NewTarSplitReader(tsPayload, tarSplitDigest)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var rebuilt bytes.Buffer
	if _, err := lzstdchunked.WriteTarFromTarSplit(&rebuilt, r, func(name string, size int64) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(want[name])), nil
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rebuilt.Bytes(), input) {
		t.Fatalf("tar rebuilt from the tar-split (%d bytes) differs from the input (%d bytes)", rebuilt.Len(), len(input))
	}
	checkTarSplitRepacks(t, tsPayload, f, tarSplitDigest)
	checkMarshalMatchesStorage(t, tc, tarSplitDigest, compressed, f, input) // last: it renames tc's entries
}

// checkTarSplitRepacks feeds the records of a containers/storage tar-split
// to a TarSplitWriter at containers/storage's level and expects the same
// compressed stream back.
func checkTarSplitRepacks(t *testing.T, payload []byte, f toc.Footer, want digest.Digest) {
	t.Helper()
	r, err := lzstdchunked.NewTarSplitReader(payload, want)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out bytes.Buffer
	w, err := lzstdchunked.NewTarSplitWriter(&out, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c, u := w.Size()
	if w.Digest() != want || c != f.TarSplitLength || u != f.TarSplitUncompressedLength || !bytes.Equal(out.Bytes(), payload) {
		t.Fatalf("repacked tar-split: %d/%d bytes, %s; containers/storage wrote %d/%d bytes, %s",
			c, u, w.Digest(), f.TarSplitLength, f.TarSplitUncompressedLength, want)
	}
}

// tarFiles maps each regular file of a tar to its contents, by the
// model's cleaned name.
func tarFiles(t *testing.T, input []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(input))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		files[name] = b
	}
}

// checkZstdChunkDigests decompresses every chunk's frame range, slices it
// by InnerOffset and checks it against the chunk digest, then checks that
// the chunks of each file add up to its contents.
func checkZstdChunkDigests(t *testing.T, zr *zstd.Decoder, blob []byte, tc *toc.TOC, want map[string][]byte) {
	t.Helper()
	seen := map[string]bool{}
	chunks := 0
	for _, e := range tc.Entries {
		if e.Type != toc.TypeReg {
			continue
		}
		var content []byte
		for i, c := range e.Chunks {
			frame, err := zr.DecodeAll(blob[c.FrameOffset:c.FrameEnd], nil)
			if err != nil {
				t.Fatalf("%s: chunk %d: frame [%d,%d): %v", e.Name, i, c.FrameOffset, c.FrameEnd, err)
			}
			if int64(len(frame)) < c.InnerOffset+c.Size {
				t.Fatalf("%s: chunk %d: frame holds %d bytes, chunk wants [%d,%d)", e.Name, i, len(frame), c.InnerOffset, c.InnerOffset+c.Size)
			}
			data := frame[c.InnerOffset : c.InnerOffset+c.Size]
			if c.Digest == "" || digest.FromBytes(data) != c.Digest {
				t.Fatalf("%s: chunk %d: data has digest %s, TOC says %q", e.Name, i, digest.FromBytes(data), c.Digest)
			}
			content = append(content, data...)
			chunks++
		}
		if !bytes.Equal(content, want[e.Name]) {
			t.Fatalf("%s: chunks hold %d bytes that differ from the tar's %d", e.Name, len(content), len(want[e.Name]))
		}
		seen[e.Name] = true
	}
	for name := range maps.Keys(want) {
		if !seen[name] {
			t.Errorf("file %q of the tar is missing from the TOC", name)
		}
	}
	if chunks == 0 {
		t.Fatal("no chunks checked")
	}
}

// checkStorageTOCShape makes sure the containers/storage blob exercised
// content-defined multi-chunk files. (Its "zeros" chunks only appear in
// files mixing data and holes; toc's golden tests cover them.)
func checkStorageTOCShape(t *testing.T, tc *toc.TOC) {
	t.Helper()
	for _, e := range tc.Entries {
		if len(e.Chunks) > 1 {
			return
		}
	}
	t.Fatal("no multi-chunk file; the corpus should produce some")
}

// checkMarshalMatchesStorage re-encodes the decoded TOC, with the names
// the tar spells as a writer would pass them, and compares it with the
// reference's JSON byte for byte.
func checkMarshalMatchesStorage(t *testing.T, tc *toc.TOC, tarSplitDigest digest.Digest, compressed []byte, f toc.Footer, input []byte) {
	t.Helper()
	wantJSON, err := lzstdchunked.DecompressTOC(compressed, f.TOCUncompressedLength)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(input))
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tc.Entries[i].Name = hdr.Name
		if hdr.Typeflag == tar.TypeLink {
			tc.Entries[i].LinkName = hdr.Linkname
		}
	}
	js, err := lzstdchunked.Marshal(tc, tarSplitDigest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(js, wantJSON) {
		t.Fatalf("zstdchunked.Marshal differs from containers/storage's TOC:\n got %.400s\nwant %.400s", js, wantJSON)
	}
	// containers/storage compresses its TOC at zstd level 10.
	if z, err := lzstdchunked.CompressFrame(js, 10); err != nil || !bytes.Equal(z, compressed) {
		t.Fatalf("zstdchunked.CompressFrame(TOC, 10): %d bytes, %v; containers/storage wrote %d bytes", len(z), err, len(compressed))
	}
}

// TestZstdChunkedCodecReadsStorageGoroot runs the same checks on a real
// tree of thousands of files (the Go toolchain).
func TestZstdChunkedCodecReadsStorageGoroot(t *testing.T) {
	if testing.Short() {
		t.Skip("compresses the whole GOROOT tar")
	}
	t.Parallel()
	input := corpus.GorootBytes(t)
	checkZstdChunkedBlob(t, storageZstdChunked(t, "goroot", input), input, true)
}
