package interop

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	lzstdchunked "github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	storagetoc "github.com/containers/storage/pkg/chunked/toc"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	splittar "github.com/vbatts/tar-split/archive/tar"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/interop/internal/corpus"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
)

// buildOurZstdChunked writes input as a zstd:chunked blob with our writer.
func buildOurZstdChunked(tb testing.TB, input []byte, opts ...writer.Option) ([]byte, *writer.Result) {
	tb.Helper()
	var blob bytes.Buffer
	res, err := writer.Build(context.Background(), &blob, bytes.NewReader(input), append(opts, writer.WithFormat(toc.FormatZstdChunked))...)
	if err != nil {
		tb.Fatal(err)
	}
	return blob.Bytes(), res
}

// holesTar is a tar whose files mix data with long zero runs and span many
// content-defined chunks, with names spelled "./x" as many tools write them.
func holesTar(t *testing.T) []byte {
	t.Helper()
	data := make([]byte, 900<<10)
	x := uint32(7)
	for i := range data {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		data[i] = byte(x)
	}
	holes := append(append(bytes.Clone(data[:10000]), make([]byte, 64<<10)...), data[20000:90000]...)
	mtime := time.Date(2024, 2, 3, 4, 5, 6, 789, time.UTC)
	in, err := corpus.WriteTar([]corpus.Entry{
		{Header: &tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}},
		{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "./random", Mode: 0o644, Size: int64(len(data)), ModTime: mtime, Format: tar.FormatPAX}, Content: data},
		{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "./holes", Mode: 0o600, Size: int64(len(holes)), ModTime: mtime, Format: tar.FormatPAX}, Content: holes},
		{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "./zeros", Mode: 0o600, Size: 5000, ModTime: mtime, Format: tar.FormatPAX}, Content: make([]byte, 5000)},
		{Header: &tar.Header{Typeflag: tar.TypeLink, Name: "./again", Linkname: "./random", ModTime: mtime, Format: tar.FormatPAX}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestZstdChunkedWriterInterop checks our zstd:chunked blobs against the
// reference implementations: a plain zstd reader yields the input tar;
// containers/storage's annotation parser accepts the annotations;
// tar-split's own assembler rebuilds the input from our tar-split, whose
// headers match our TOC under containers/storage's rules; and
// estargz's zstdchunked.Decompressor reads every file back.
func TestZstdChunkedWriterInterop(t *testing.T) {
	t.Parallel()
	corpora := map[string]func(t *testing.T) []byte{
		"kinds": func(t *testing.T) []byte { return corpus.KindsTar(t) },
		"holes": holesTar,
		"goroot": func(t *testing.T) []byte {
			if testing.Short() {
				t.Skip("builds the whole GOROOT tar")
			}
			return corpus.GorootBytes(t)
		},
	}
	for name, input := range corpora {
		t.Run(name, func(t *testing.T) {
			input := input(t)
			blob, res := buildOurZstdChunked(t, input)
			checkPlainZstd(t, blob, input)
			d, err := storagetoc.GetTOCDigest(res.Annotations)
			if err != nil || d == nil || *d != res.TOCDigest {
				t.Errorf("containers/storage reads TOC digest %v (%v) from our annotations, want %s", d, err, res.TOCDigest)
			}
			checkTarSplitWithReference(t, blob, input, res.Annotations)
			checkWithEStargzReader(t, blob, input, res)
		})
	}
}

func checkPlainZstd(t *testing.T, blob, input []byte) {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	d := digest.Canonical.Digester()
	if _, err := io.Copy(d.Hash(), zr); err != nil {
		t.Fatalf("plain zstd reader: %v", err)
	}
	if got, want := d.Digest(), digest.FromBytes(input); got != want {
		t.Errorf("plain zstd decompression has digest %s, the input tar %s", got, want)
	}
}

// storageFileMetadata is the part of containers/storage's TOC entry
// (minimal.FileMetadata) that its TOC/tar-split consistency check
// compares.
type storageFileMetadata struct {
	Type       string            `json:"type"`
	Name       string            `json:"name"`
	Linkname   string            `json:"linkName"`
	Mode       int64             `json:"mode"`
	Size       int64             `json:"size"`
	UID        int               `json:"uid"`
	GID        int               `json:"gid"`
	ModTime    *time.Time        `json:"modtime"`
	AccessTime *time.Time        `json:"accesstime"`
	ChangeTime *time.Time        `json:"changetime"`
	Devmajor   int64             `json:"devMajor"`
	Devminor   int64             `json:"devMinor"`
	Xattrs     map[string]string `json:"xattrs"`
}

// checkTarSplitWithReference feeds our tar-split to vbatts/tar-split: its
// header iterator must list our TOC's entries with equal metadata, as
// containers/storage's ensureTOCMatchesTarSplit requires (that function is
// unexported, and NewDiffer, which calls it, needs a store with an
// overlay driver), and its assembler must rebuild the input tar.
//
// Like containers/storage, it finds the TOC and tar-split from the
// annotations alone, parsed as that reader parses them.
func checkTarSplitWithReference(t *testing.T, blob, input []byte, annotations map[string]string) {
	t.Helper()
	var tocOffset, tocLength, tocUncompressed, manifestType, tsOffset, tsLength, tsUncompressed int64
	if _, err := fmt.Sscanf(annotations[lzstdchunked.AnnotationManifestPosition], "%d:%d:%d:%d", &tocOffset, &tocLength, &tocUncompressed, &manifestType); err != nil {
		t.Fatalf("manifest position: %v", err)
	}
	if _, err := fmt.Sscanf(annotations[lzstdchunked.AnnotationTarSplitPosition], "%d:%d:%d", &tsOffset, &tsLength, &tsUncompressed); err != nil {
		t.Fatalf("tar-split position: %v", err)
	}
	tocJSON, err := lzstdchunked.DecompressTOC(blob[tocOffset:tocOffset+tocLength], tocUncompressed)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Entries        []storageFileMetadata `json:"entries"`
		TarSplitDigest string                `json:"tarSplitDigest"`
	}
	if err := json.Unmarshal(tocJSON, &doc); err != nil {
		t.Fatal(err)
	}
	pending := map[string]storageFileMetadata{}
	for _, e := range doc.Entries {
		if e.Type == "chunk" {
			continue
		}
		if _, dup := pending[e.Name]; dup {
			t.Fatalf("TOC lists %q twice", e.Name)
		}
		pending[e.Name] = e
	}
	compressed := blob[tsOffset : tsOffset+tsLength]
	if got := digest.FromBytes(compressed).String(); got != doc.TarSplitDigest || got != annotations[lzstdchunked.AnnotationTarSplitChecksum] {
		t.Fatalf("tar-split digest %s, TOC pins %s, the annotation (for containers/storage v1.47 to v1.53) %s",
			got, doc.TarSplitDigest, annotations[lzstdchunked.AnnotationTarSplitChecksum])
	}
	zr, err := zstd.NewReader(bytes.NewReader(compressed))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tarSplit, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(tarSplit)) != tsUncompressed {
		t.Fatalf("tar-split of %d bytes, the annotation says %d", len(tarSplit), tsUncompressed)
	}
	err = asm.IterateHeaders(storage.NewJSONUnpacker(bytes.NewReader(tarSplit)), func(hdr *splittar.Header) error {
		e, ok := pending[hdr.Name]
		if !ok {
			return fmt.Errorf("tar-split entry %q missing in the TOC", hdr.Name)
		}
		delete(pending, hdr.Name)
		return sameStorageMetadata(e, hdr)
	})
	if err != nil {
		t.Fatalf("tar-split against TOC: %v", err)
	}
	if len(pending) > 0 {
		t.Errorf("TOC entries not in the tar-split: %v", slicesOf(maps.Keys(pending)))
	}

	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(input))
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		files[hdr.Name], _ = io.ReadAll(tr)
	}
	out := asm.NewOutputTarStream(mapGetter(files), storage.NewJSONUnpacker(bytes.NewReader(tarSplit)))
	defer out.Close()
	rebuilt, err := io.ReadAll(out)
	if err != nil {
		t.Fatalf("tar-split assembler: %v", err)
	}
	if !bytes.Equal(rebuilt, input) {
		t.Errorf("tar-split's assembler rebuilt %d bytes that differ from the %d-byte input", len(rebuilt), len(input))
	}
}

func slicesOf(seq func(func(string) bool)) []string {
	var s []string
	for k := range seq {
		s = append(s, k)
	}
	return s
}

// mapGetter serves file contents to tar-split's assembler by tar name.
type mapGetter map[string][]byte

func (m mapGetter) Get(name string) (io.ReadCloser, error) {
	b, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("no file %q", name)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// sameStorageMetadata compares a TOC entry with a tar header as
// containers/storage does (minimal.NewFileMetadata, then
// ensureFileMetadataAttributesMatch): names and link names byte for byte,
// times as instants, xattrs base64-encoded.
func sameStorageMetadata(e storageFileMetadata, hdr *splittar.Header) error {
	types := map[byte]string{tar.TypeReg: "reg", tar.TypeRegA: "reg", tar.TypeLink: "hardlink", tar.TypeSymlink: "symlink",
		tar.TypeDir: "dir", tar.TypeChar: "char", tar.TypeBlock: "block", tar.TypeFifo: "fifo"}
	if e.Type != types[hdr.Typeflag] || e.Name != hdr.Name || e.Linkname != hdr.Linkname || e.Mode != hdr.Mode ||
		e.Size != hdr.Size || e.UID != hdr.Uid || e.GID != hdr.Gid || e.Devmajor != hdr.Devmajor || e.Devminor != hdr.Devminor {
		return fmt.Errorf("%q: TOC %+v, tar header %+v", hdr.Name, e, hdr)
	}
	for _, tt := range []struct {
		toc *time.Time
		tar time.Time
	}{{e.ModTime, hdr.ModTime}, {e.AccessTime, hdr.AccessTime}, {e.ChangeTime, hdr.ChangeTime}} {
		if (tt.toc == nil) != tt.tar.IsZero() || tt.toc != nil && !tt.toc.Equal(tt.tar) {
			return fmt.Errorf("%q: TOC time %v, tar header %v", hdr.Name, tt.toc, tt.tar)
		}
	}
	xattrs := map[string]string{}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			xattrs[name] = base64.StdEncoding.EncodeToString([]byte(v))
		}
	}
	if len(xattrs)+len(e.Xattrs) > 0 && !maps.Equal(xattrs, e.Xattrs) {
		return fmt.Errorf("%q: TOC xattrs %v, tar header %v", hdr.Name, e.Xattrs, xattrs)
	}
	return nil
}

// checkWithEStargzReader opens our blob with estargz's reader and its
// zstdchunked.Decompressor, as stargz-snapshotter and ctr-remote do, and
// reads every regular file back. That decompressor knows only the 48-byte
// footer, which is why our writer writes it, and only the first spelling
// of the manifest annotations, which our writer writes too.
func checkWithEStargzReader(t *testing.T, blob, input []byte, res *writer.Result) {
	t.Helper()
	r, err := estargz.Open(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))),
		estargz.WithDecompressors(new(zstdchunked.Decompressor)))
	if err != nil {
		t.Fatalf("estargz.Open: %v", err)
	}
	f, err := lzstdchunked.ParseFooter(blob[len(blob)-toc.MaxFooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	tocJSON, err := lzstdchunked.DecompressTOC(blob[f.TOCOffset:f.TOCOffset+f.TOCLength], f.TOCUncompressedLength)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.TOCDigest(), digest.FromBytes(tocJSON); got != want {
		t.Errorf("estargz reads TOC JSON digest %s, want %s", got, want)
	}
	wantPosition := fmt.Sprintf("%d:%d:%d:1", f.TOCOffset, f.TOCLength, f.TOCUncompressedLength)
	if a := res.Annotations; a[zstdchunked.ManifestChecksumAnnotation] != res.TOCDigest.String() || a[zstdchunked.ManifestPositionAnnotation] != wantPosition {
		t.Errorf("annotations %v: estargz's keys %q and %q should hold %s and %s", a,
			zstdchunked.ManifestChecksumAnnotation, zstdchunked.ManifestPositionAnnotation, res.TOCDigest, wantPosition)
	}
	checked := 0
	for name, want := range tarFiles(t, input) {
		sr, err := r.OpenFile(name)
		if err != nil {
			t.Fatalf("estargz OpenFile(%q): %v", name, err)
		}
		got := make([]byte, len(want))
		if n, err := sr.ReadAt(got, 0); n != len(want) || err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("estargz read %q: %d of %d bytes: %v", name, n, len(want), err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("estargz read %q: content differs", name)
		}
		checked++
	}
	if checked == 0 {
		t.Error("no regular files checked")
	}
}

// TestZstdChunkedReaderReadsReferenceWriters reads blobs written by
// containers/storage's compressor and by estargz's zstdchunked compressor
// through our reader, opened from the footer and from the annotations
// each writer produced: every file byte for byte, and for
// containers/storage's blobs (which carry a tar-split) the original tar
// from WriteTar. The GOROOT tree is skipped with -short.
func TestZstdChunkedReaderReadsReferenceWriters(t *testing.T) {
	t.Parallel()
	inputs := map[string][]byte{"kinds": corpus.KindsTar(t), "holes": holesTar(t)}
	if !testing.Short() {
		inputs["goroot"] = corpus.GorootBytes(t)
	}
	for name, input := range inputs {
		refs := map[string]zstdChunkedBlob{
			"storage": storageZstdChunked(t, name, input),
			"estargz": estargzZstdChunked(t, input),
		}
		for writerName, ref := range refs {
			for _, how := range []string{"footer", "annotations"} {
				t.Run(name+"/"+writerName+"/"+how, func(t *testing.T) {
					var opts []reader.Option
					if how == "annotations" {
						opts = append(opts, reader.WithAnnotations(ref.annotations))
					}
					l, err := reader.Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(ref.blob), int64(len(ref.blob))), opts...)
					if err != nil {
						t.Fatal(err)
					}
					defer l.Close()
					checkFilesRead(t, l, input)
					var out bytes.Buffer
					diffID, err := l.WriteTar(context.Background(), &out)
					if writerName == "estargz" {
						if !errors.Is(err, reader.ErrNoTarSplit) {
							t.Errorf("WriteTar without a tar-split: error %v, want ErrNoTarSplit", err)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(out.Bytes(), input) || diffID != digest.FromBytes(input) {
						t.Errorf("WriteTar wrote %d bytes (%s), want the %d-byte input (%s)", out.Len(), diffID, len(input), digest.FromBytes(input))
					}
				})
			}
		}
	}
}

// checkFilesRead reads every regular file of input through l.
func checkFilesRead(t *testing.T, l *reader.Layer, input []byte) {
	t.Helper()
	for name, want := range tarFiles(t, input) {
		got, err := l.ReadFile(name)
		if err != nil {
			t.Fatalf("ReadFile(%q): %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("ReadFile(%q): content differs", name)
		}
	}
}

// TestZstdChunkedReaderRefusesStorageSparseBlob checks that our reader
// refuses the blob containers/storage's compressor writes from a PAX
// sparse file: its TOC describes the expanded file, which a lazy read
// would show, while the blob decompresses to the sparse header followed
// by the expanded contents, which tar readers extract as something else.
func TestZstdChunkedReaderRefusesStorageSparseBlob(t *testing.T) {
	t.Parallel()
	input, err := corpus.SparseTar("s", 1<<20, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	ref := storageZstdChunked(t, "sparse", input)
	zr, err := zstd.NewReader(bytes.NewReader(ref.blob))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if whole, err := io.ReadAll(zr); err != nil || bytes.Equal(whole, input) {
		t.Fatalf("containers/storage's blob decompresses to its input (err %v): the reference now keeps sparse files, revisit writer and reader", err)
	}
	for _, how := range []string{"footer", "annotations"} {
		var opts []reader.Option
		if how == "annotations" {
			opts = append(opts, reader.WithAnnotations(ref.annotations))
		}
		l, err := reader.Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(ref.blob), int64(len(ref.blob))), opts...)
		if err == nil {
			l.Close()
		}
		if !errors.Is(err, reader.ErrCorrupt) || !errors.Is(err, lzstdchunked.ErrTarSplitMismatch) {
			t.Errorf("%s: Open: %v, want ErrCorrupt and ErrTarSplitMismatch", how, err)
		}
	}
}
