package reader

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/lazylayer/lazylayer/toc/estargz"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
	"github.com/opencontainers/go-digest"
)

// sampleTar is a small layer with every entry kind and a file of several
// chunks at small chunk sizes.
func sampleTar(t testing.TB) ([]byte, map[string][]byte) {
	t.Helper()
	files := map[string][]byte{
		"etc/hostname":  []byte("lazy\n"),
		"etc/empty":     {},
		"usr/bin/tool":  pseudoRandom(200<<10, 4),
		"usr/lib/a.txt": bytes.Repeat([]byte("text "), 3000),
		"usr/lib/b.txt": []byte("b"),
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(h *tar.Header, content []byte) {
		h.Size = int64(len(content))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(content)
	}
	write(&tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755}, nil)
	for _, name := range []string{"etc/hostname", "etc/empty", "usr/bin/tool", "usr/lib/a.txt", "usr/lib/b.txt"} {
		write(&tar.Header{Typeflag: tar.TypeReg, Name: name, ModTime: modTime}, files[name])
	}
	write(&tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/bin/sh", Linkname: "tool"}, nil)
	write(&tar.Header{Typeflag: tar.TypeLink, Name: "usr/bin/tool2", Linkname: "usr/bin/tool"}, nil)
	write(&tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Devmajor: 1, Devminor: 3}, nil)
	write(&tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo"}, nil)
	write(&tar.Header{Typeflag: tar.TypeReg, Name: "usr/lib/.wh.old"}, nil)
	tw.Close()
	files["usr/bin/tool2"] = files["usr/bin/tool"]
	files["usr/bin/sh"] = files["usr/bin/tool"]
	files["usr/lib/.wh.old"] = []byte{}
	return buf.Bytes(), files
}

func writerBlob(t testing.TB, tarData []byte, opts ...writer.Option) ([]byte, *writer.Result) {
	t.Helper()
	var blob bytes.Buffer
	res, err := writer.Build(context.Background(), &blob, bytes.NewReader(tarData), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return blob.Bytes(), res
}

func openBlob(blob []byte, opts ...Option) (*Layer, error) {
	return Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))), opts...)
}

func TestOpenReadsWriterBlobs(t *testing.T) {
	tarData, files := sampleTar(t)
	for name, opts := range map[string][]writer.Option{
		"default":     nil,
		"chunk-16k":   {writer.WithChunkSize(16 << 10)},
		"min-chunk":   {writer.WithChunkSize(16 << 10), writer.WithMinChunkSize(64 << 10)},
		"prioritized": {writer.WithPrioritizedFiles([]string{"usr/lib/b.txt"})},
	} {
		t.Run(name, func(t *testing.T) {
			blob, res := writerBlob(t, tarData, opts...)
			l, err := openBlob(blob, WithTOCDigest(res.TOCDigest))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			for name, want := range files {
				if got, err := l.ReadFile(name); err != nil || !bytes.Equal(got, want) {
					t.Errorf("ReadFile(%q) = %d bytes, %v; want %d", name, len(got), err, len(want))
				}
			}
			if err := fstest.TestFS(l, "etc/hostname", "usr/bin/tool", "usr/bin/tool2", "usr/bin/sh", "dev/null", "usr/lib/.wh.old"); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestOpenFetchesTailOnceWhenItHoldsTheTOC(t *testing.T) {
	tarData, _ := sampleTar(t)
	blob, res := writerBlob(t, tarData)
	footer, err := parseFooter(blob[len(blob)-toc.MaxFooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		hint int64
		want []fetcher.Range
	}{
		{0, []fetcher.Range{{Offset: int64(len(blob)) - min(DefaultTailHint, int64(len(blob))), Length: min(DefaultTailHint, int64(len(blob)))}}},
		{int64(len(blob)) - footer.TOCOffset, []fetcher.Range{{Offset: footer.TOCOffset, Length: int64(len(blob)) - footer.TOCOffset}}},
		{10, []fetcher.Range{ // then only the TOC's bytes the tail lacks
			{Offset: int64(len(blob) - toc.MaxFooterSize), Length: toc.MaxFooterSize},
			{Offset: footer.TOCOffset, Length: int64(len(blob)-toc.MaxFooterSize) - footer.TOCOffset},
		}},
	} {
		// Open asks for the bytes in pieces, which the fetcher reads in
		// one request each time.
		var asked []fetcher.Range
		f := fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)), fetcher.WithObserver(func(info fetcher.RequestInfo) {
			asked = append(asked, info.Spans...)
		}))
		l, err := Open(context.Background(), f, WithTailHint(tc.hint), WithTOCDigest(res.TOCDigest))
		if err != nil {
			t.Fatalf("hint %d: %v", tc.hint, err)
		}
		l.Close()
		if !slices.Equal(asked, tc.want) {
			t.Errorf("hint %d: fetched %v, want %v", tc.hint, asked, tc.want)
		}
	}
}

func TestOpenRejectsDamagedBlobs(t *testing.T) {
	tarData, _ := sampleTar(t)
	blob, res := writerBlob(t, tarData)
	footer, _ := parseFooter(blob)
	flip := func(at int) []byte {
		b := bytes.Clone(blob)
		b[at] ^= 0x40
		return b
	}
	for _, tc := range []struct {
		name string
		blob []byte
		opts []Option
		want []error
	}{
		{"empty", nil, nil, []error{ErrCorrupt}},
		// Without its footer, a gzip blob is a plain gzip layer.
		{"tiny", blob[:10], nil, []error{ErrNotSeekable, toc.ErrInvalidFooter}},
		{"truncated by 1", blob[:len(blob)-1], nil, []error{ErrNotSeekable}},
		{"truncated by 30", blob[:len(blob)-30], nil, []error{ErrNotSeekable}},
		{"truncated into TOC", blob[:footer.TOCOffset+20], nil, []error{ErrNotSeekable}},
		{"footer magic", flip(len(blob) - 2), nil, []error{ErrNotSeekable}},
		{"no footer, no gzip", flip(0)[:len(blob)-1], nil, []error{ErrCorrupt, toc.ErrNoFooter}},
		{"head cut off", blob[footer.TOCOffset-1:], nil, []error{ErrCorrupt}},
		{"footer offset digit", flip(len(blob) - 20), nil, []error{ErrCorrupt}},
		{"TOC member byte", flip(int(footer.TOCOffset) + 40), nil, []error{ErrCorrupt}},
		{"TOC digest", blob, []Option{WithTOCDigest(digest.FromString("x"))}, []error{ErrTOCDigest}},
		{"TOC too large", blob, []Option{WithMaxTOCSize(64)}, []error{ErrCorrupt, toc.ErrTOCTooLarge}},
		{"external TOC", append(bytes.Clone(blob[:footer.TOCOffset]), estargz.ExternalTOCFooter()...), nil, []error{ErrUnsupportedFormat}},
	} {
		l, err := openBlob(tc.blob, append(tc.opts, WithTailHint(100))...)
		if err == nil {
			l.Close()
		}
		for _, want := range tc.want {
			if !errors.Is(err, want) {
				t.Errorf("%s: error = %v, want %v", tc.name, err, want)
			}
		}
	}
	// The pinned digest still opens the intact blob.
	l, err := openBlob(blob, WithTOCDigest(res.TOCDigest))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// assemble appends a TOC member for index and a footer to data. The
// replacer pairs edit the TOC JSON first, to write what the encoder would
// refuse.
func assemble(t *testing.T, data []byte, index *toc.TOC, replacer ...string) []byte {
	t.Helper()
	js, err := estargz.Marshal(index)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(replacer); i += 2 {
		js = bytes.ReplaceAll(js, []byte(replacer[i]), []byte(replacer[i+1]))
	}
	blob := bytes.NewBuffer(bytes.Clone(data))
	if err := estargz.WriteTOCMember(blob, js, 9); err != nil {
		t.Fatal(err)
	}
	blob.Write(estargz.Footer(int64(len(data))))
	return blob.Bytes()
}

func TestOpenHostileIndexes(t *testing.T) {
	b := &blobBuilder{chunkSize: 100}
	b.add(&toc.Entry{Name: "f", Mode: 0o644}, []byte("first"))
	b.add(&toc.Entry{Name: "f", Mode: 0o600}, []byte("second"))
	b.add(&toc.Entry{Name: "a", Type: toc.TypeHardlink, LinkName: "b"}, nil)
	b.add(&toc.Entry{Name: "b", Type: toc.TypeHardlink, LinkName: "a"}, nil)
	data, index := b.finish()
	blob := assemble(t, data, index)
	l, err := openBlob(blob)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got, err := l.ReadFile("f"); err != nil || string(got) != "second" {
		t.Errorf("duplicate f = %q, %v", got, err)
	}
	if _, err := l.ReadFile("a"); !errors.Is(err, ErrLinkLoop) {
		t.Errorf("hard link loop: %v", err)
	}
}

func TestOpenRejectsEscapingNames(t *testing.T) {
	b := &blobBuilder{}
	b.add(&toc.Entry{Name: "escape", Mode: 0o644}, []byte("inside"))
	data, index := b.finish()
	for _, name := range []string{"../escape", "/escape", "a/../../escape"} {
		blob := assemble(t, data, index, `"escape"`, `"`+name+`"`)
		l, err := openBlob(blob)
		if err != nil {
			// The decoder refuses the name outright.
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%q: error = %v", name, err)
			}
			continue
		}
		// Or it keeps the entry, inside the layer root.
		if got, err := l.ReadFile("escape"); err != nil || string(got) != "inside" {
			t.Errorf("%q: ReadFile(escape) = %q, %v", name, got, err)
		}
		l.Close()
	}
}

func TestSeekAndReadAt(t *testing.T) {
	tarData, files := sampleTar(t)
	blob, _ := writerBlob(t, tarData, writer.WithChunkSize(10<<10))
	l, err := openBlob(blob)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := files["usr/bin/tool"]
	f, _ := l.Open("usr/bin/tool")
	defer f.Close()
	s := f.(io.ReadSeeker)
	if pos, err := s.Seek(-100, io.SeekEnd); err != nil || pos != int64(len(want))-100 {
		t.Fatalf("Seek = %d, %v", pos, err)
	}
	rest, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(rest, want[len(want)-100:]) {
		t.Errorf("read after Seek = %d bytes, %v", len(rest), err)
	}
	if _, err := s.Seek(-1, io.SeekStart); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Seek(-1) = %v", err)
	}
	buf := make([]byte, 30<<10)
	n, err := f.(io.ReaderAt).ReadAt(buf, int64(len(want))-(20<<10))
	if n != 20<<10 || err != io.EOF || !bytes.Equal(buf[:n], want[len(want)-(20<<10):]) {
		t.Errorf("ReadAt past end = %d, %v", n, err)
	}
	var out bytes.Buffer
	s.Seek(5, io.SeekStart)
	if n, err := io.Copy(&out, s); err != nil || n != int64(len(want))-5 || !bytes.Equal(out.Bytes(), want[5:]) {
		t.Errorf("WriteTo = %d, %v", n, err)
	}
}
