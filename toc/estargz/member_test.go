package estargz

import (
	"archive/tar"
	"bytes"
	"errors"
	"testing"

	"github.com/lazylayer/lazylayer/internal/toctest"
	"github.com/lazylayer/lazylayer/toc"

	"github.com/klauspost/compress/gzip"
)

// memberOf gzips a tar stream holding the given entries.
func memberOf(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		if err := tw.WriteHeader(&e.hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type tarEntry struct {
	hdr  tar.Header
	body []byte
}

func tocEntry(body []byte) tarEntry {
	return tarEntry{tar.Header{Typeflag: tar.TypeReg, Name: TOCTarName, Size: int64(len(body))}, body}
}

func TestReadEStargzTOCMemberRoundTrip(t *testing.T) {
	js := []byte(`{"version":1,"entries":[]}`)
	for _, level := range []int{gzip.NoCompression, gzip.BestSpeed, gzip.DefaultCompression, gzip.BestCompression} {
		var b bytes.Buffer
		if err := WriteTOCMember(&b, js, level); err != nil {
			t.Fatal(err)
		}
		// The footer and anything else after the member is ignored.
		b.Write(Footer(0))
		got, err := ReadTOCMember(b.Bytes())
		if err != nil || !bytes.Equal(got, js) {
			t.Fatalf("level %d: ReadTOCMember = %q, %v", level, got, err)
		}
	}
	if err := WriteTOCMember(&bytes.Buffer{}, js, 42); err == nil {
		t.Fatal("WriteTOCMember accepted gzip level 42")
	}
}

func TestReadEStargzTOCMemberRejects(t *testing.T) {
	js := []byte(`{"version":1,"entries":[]}`)
	good := memberOf(t, tocEntry(js))
	cases := []struct {
		name   string
		member []byte
		opts   []toc.DecodeOption
		want   error
	}{
		{"empty", nil, nil, toc.ErrInvalidTOC},
		{"not gzip", []byte("hello, world"), nil, toc.ErrInvalidTOC},
		{"truncated", good[:len(good)/2], nil, toc.ErrInvalidTOC},
		{"no tar", memberOf(t), nil, toc.ErrInvalidTOC},
		{"wrong name", memberOf(t, tarEntry{tar.Header{Typeflag: tar.TypeReg, Name: "index.json", Size: 2}, []byte("{}")}), nil, toc.ErrInvalidTOC},
		{"not a file", memberOf(t, tarEntry{tar.Header{Typeflag: tar.TypeDir, Name: TOCTarName}, nil}), nil, toc.ErrInvalidTOC},
		{"over the limit", good, []toc.DecodeOption{toc.WithMaxTOCSize(int64(len(js)) - 1)}, toc.ErrTOCTooLarge},
	}
	for _, c := range cases {
		if _, err := ReadTOCMember(c.member, c.opts...); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := ReadTOCMember(good, toc.WithMaxTOCSize(int64(len(js)))); err != nil {
		t.Errorf("exactly at the limit: %v", err)
	}
}

// TestReadEStargzTOCMemberBomb feeds a small member that inflates to far
// more than the limit; decoding must refuse without inflating it all.
func TestReadEStargzTOCMemberBomb(t *testing.T) {
	const inflated = 64 << 20
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: TOCTarName, Size: inflated})
	zeros := make([]byte, 1<<20)
	for range inflated / len(zeros) {
		tw.Write(zeros)
	}
	tw.Close()
	zw.Close()
	if b.Len() > 1<<20 {
		t.Fatalf("bomb is %d bytes compressed; the test wants a small one", b.Len())
	}
	allocated := toctest.BytesAllocated(func() {
		_, err := ReadTOCMember(b.Bytes(), toc.WithMaxTOCSize(1<<20))
		if !errors.Is(err, toc.ErrTOCTooLarge) {
			t.Fatalf("err = %v, want ErrTOCTooLarge", err)
		}
	})
	if allocated > 8<<20 {
		t.Errorf("allocated %d bytes to reject a bomb", allocated)
	}
}

// TestReadEStargzTOCMemberLyingHeader has a tar header that claims more
// JSON than the member holds: the buffer must not be sized from the claim.
func TestReadEStargzTOCMemberLyingHeader(t *testing.T) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: TOCTarName, Size: 100 << 20})
	tw.Write([]byte(`{"version":1}`))
	zw.Close() // no tar close: the entry is short
	allocated := toctest.BytesAllocated(func() {
		if _, err := ReadTOCMember(b.Bytes()); !errors.Is(err, toc.ErrInvalidTOC) {
			t.Fatalf("err = %v, want ErrInvalidTOC", err)
		}
	})
	if allocated > 8<<20 {
		t.Errorf("allocated %d bytes for a %d-byte member", allocated, b.Len())
	}
}
