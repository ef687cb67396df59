package estargz

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/toc"

	"github.com/opencontainers/go-digest"
)

func TestLandmarkContents(t *testing.T) {
	b := LandmarkContents()
	if !bytes.Equal(b, []byte{0x0f}) || digest.FromBytes(b) != LandmarkDigest {
		t.Fatalf("LandmarkContents = %x, digest %s", b, digest.FromBytes(b))
	}
	b[0] = 0
	if LandmarkContents()[0] != 0x0f {
		t.Fatal("LandmarkContents returned shared memory")
	}
}

func TestEStargzAnnotationsRoundTrip(t *testing.T) {
	d := digest.FromString("toc")
	a := Annotations(d, 12345)
	if a[AnnotationTOCDigest] != d.String() || a[AnnotationUncompressedSize] != "12345" {
		t.Fatalf("annotations = %v", a)
	}
	gotD, gotSize, err := ParseAnnotations(a)
	if err != nil || gotD != d || gotSize != 12345 {
		t.Fatalf("ParseAnnotations = %s, %d, %v", gotD, gotSize, err)
	}
}

func TestParseEStargzAnnotations(t *testing.T) {
	d := digest.FromString("toc").String()
	cases := []struct {
		name     string
		in       map[string]string
		wantSize int64
		wantErr  error
	}{
		{"size absent", map[string]string{AnnotationTOCDigest: d}, -1, nil},
		{"no annotations", nil, 0, toc.ErrMissingAnnotation},
		{"digest absent", map[string]string{AnnotationUncompressedSize: "1"}, 0, toc.ErrMissingAnnotation},
		{"bad digest", map[string]string{AnnotationTOCDigest: "sha256:zz"}, 0, toc.ErrInvalidAnnotation},
		{"bad size", map[string]string{AnnotationTOCDigest: d, AnnotationUncompressedSize: "1k"}, 0, toc.ErrInvalidAnnotation},
		{"negative size", map[string]string{AnnotationTOCDigest: d, AnnotationUncompressedSize: "-1"}, 0, toc.ErrInvalidAnnotation},
		{"huge size", map[string]string{AnnotationTOCDigest: d, AnnotationUncompressedSize: strings.Repeat("9", 1<<20)}, 0, toc.ErrInvalidAnnotation},
	}
	for _, c := range cases {
		_, size, err := ParseAnnotations(c.in)
		if !errors.Is(err, c.wantErr) || (err == nil && size != c.wantSize) {
			t.Errorf("%s: size %d, err %v; want %d, %v", c.name, size, err, c.wantSize, c.wantErr)
		}
		if err != nil && len(err.Error()) > 512 {
			t.Errorf("%s: error of %d bytes", c.name, len(err.Error()))
		}
	}
}
