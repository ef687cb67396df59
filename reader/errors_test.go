package reader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// TestErrorsNameThePackageOnce checks the text of the errors Layer
// methods and Open return: the sentinels they wrap must not repeat the
// prefix the wrapping adds.
func TestErrorsNameThePackageOnce(t *testing.T) {
	tarData, _ := sampleTar(t)
	estargz, _ := writerBlob(t, tarData)
	zstd, res := buildZstdChunked(t, zstdChunkedInput(t, 0o644))
	_, zfooter, _ := zstdchunked.ParseAnnotations(res.Annotations)
	badAnnotations := maps.Clone(res.Annotations)
	badAnnotations[zstdchunked.AnnotationManifestPosition] = "x"

	l, err := openBlob(estargz)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	errs := map[string]error{
		"FetchAll without cache": l.FetchAll(context.Background()),
	}
	_, errs["StartPrefetch without cache"] = l.StartPrefetch(context.Background(), nil)
	_, errs["WriteTar of eStargz"] = l.WriteTar(context.Background(), io.Discard)
	open := func(name string, blob []byte, opts ...Option) {
		l, err := openBlob(blob, opts...)
		if err == nil {
			l.Close()
		}
		errs[name] = err
	}
	open("empty", nil)
	open("no footer", estargz[:len(estargz)-1])
	open("eStargz TOC digest", estargz, WithTOCDigest(digest.FromString("x")))
	open("zstd:chunked footer", zstd[:len(zstd)-1])
	open("zstd:chunked TOC", flipped(zstd, zfooter.TOCOffset+zfooter.TOCLength/2), WithTailHint(100))
	open("annotations", zstd, WithAnnotations(badAnnotations))
	for name, err := range errs {
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "reader: ") || strings.Count(msg, "reader:") != 1 {
			t.Errorf("%s: error %q does not name the package exactly once, first", name, msg)
		}
	}
}

// flipped returns a copy of blob with the byte at off inverted.
func flipped(blob []byte, off int64) []byte {
	b := bytes.Clone(blob)
	b[off] ^= 0xff
	return b
}

// TestTOCDigestErrorNamesBothDigests checks that a TOC that is not the
// pinned one is reported with the digest it has, not only the one wanted.
func TestTOCDigestErrorNamesBothDigests(t *testing.T) {
	tarData, _ := sampleTar(t)
	estargz, eres := writerBlob(t, tarData)
	zstd, zres := buildZstdChunked(t, zstdChunkedInput(t, 0o644))
	_, zfooter, _ := zstdchunked.ParseAnnotations(zres.Annotations)
	wrong := digest.FromString("not the TOC")
	damagedAt := zfooter.TOCOffset + zfooter.TOCLength/2
	damaged := flipped(zstd, damagedAt)
	compressed := damaged[zfooter.TOCOffset : zfooter.TOCOffset+zfooter.TOCLength]

	for _, tc := range []struct {
		name      string
		blob      []byte
		opts      []Option
		want, got digest.Digest
	}{
		{"eStargz", estargz, []Option{WithTOCDigest(wrong)}, wrong, eres.TOCDigest},
		{"eStargz sha512 pin", estargz, []Option{WithTOCDigest(digest.SHA512.FromString("x"))}, digest.SHA512.FromString("x"), ""},
		{"zstd:chunked", zstd, []Option{WithTOCDigest(wrong)}, wrong, zres.TOCDigest},
		{"zstd:chunked damaged", damaged, []Option{WithAnnotations(zres.Annotations)}, zres.TOCDigest, digest.FromBytes(compressed)},
	} {
		l, err := openBlob(tc.blob, tc.opts...)
		if err == nil {
			l.Close()
			t.Errorf("%s: opened", tc.name)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want.String()) || !strings.Contains(msg, "got "+string(tc.got)) {
			t.Errorf("%s: error %q does not say want %s, got %s", tc.name, msg, tc.want, tc.got)
		}
	}
}

// TestOpenPlainLayersAreNotSeekable opens plain gzip, zstd and tar layers:
// each must fail with ErrNotSeekable, not ErrCorrupt, after the tail and
// at most one request for the blob's first bytes.
func TestOpenPlainLayersAreNotSeekable(t *testing.T) {
	tarData, _ := sampleTar(t)
	var gz, zs bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(tarData)
	gw.Close()
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(tarData)
	zw.Close()
	for _, tc := range []struct {
		name string
		blob []byte
	}{{"gzip", gz.Bytes()}, {"zstd", zs.Bytes()}, {"tar", tarData}} {
		for _, hint := range []int64{0, 100} { // the tail holds the head, or not
			f := &countingFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(tc.blob), int64(len(tc.blob)))}
			l, err := Open(context.Background(), f, WithTailHint(hint))
			if err == nil {
				l.Close()
			}
			if !errors.Is(err, ErrNotSeekable) || errors.Is(err, ErrCorrupt) || !strings.Contains(fmt.Sprint(err), tc.name) {
				t.Errorf("%s, tail hint %d: error %v, want ErrNotSeekable naming %s", tc.name, hint, err, tc.name)
			}
			var asked int64
			for _, r := range f.asked {
				asked += r.Length
			}
			tail := min(int64(len(tc.blob)), max(newConfig([]Option{WithTailHint(hint)}).tailHint, toc.MaxFooterSize))
			if f.calls.Load() > 2 || asked > tail+plainHeadSize {
				t.Errorf("%s, tail hint %d: fetched %v in %d calls, want the tail and at most %d bytes more", tc.name, hint, f.asked, f.calls.Load(), plainHeadSize)
			}
		}
	}
}
