package toc

import (
	"bytes"
	"errors"
	"strings"
	"testing"

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
	a := EStargzAnnotations(d, 12345)
	if a[AnnotationEStargzTOCDigest] != d.String() || a[AnnotationUncompressedSize] != "12345" {
		t.Fatalf("annotations = %v", a)
	}
	gotD, gotSize, err := ParseEStargzAnnotations(a)
	if err != nil || gotD != d || gotSize != 12345 {
		t.Fatalf("ParseEStargzAnnotations = %s, %d, %v", gotD, gotSize, err)
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
		{"size absent", map[string]string{AnnotationEStargzTOCDigest: d}, -1, nil},
		{"no annotations", nil, 0, ErrMissingAnnotation},
		{"digest absent", map[string]string{AnnotationUncompressedSize: "1"}, 0, ErrMissingAnnotation},
		{"bad digest", map[string]string{AnnotationEStargzTOCDigest: "sha256:zz"}, 0, ErrInvalidAnnotation},
		{"bad size", map[string]string{AnnotationEStargzTOCDigest: d, AnnotationUncompressedSize: "1k"}, 0, ErrInvalidAnnotation},
		{"negative size", map[string]string{AnnotationEStargzTOCDigest: d, AnnotationUncompressedSize: "-1"}, 0, ErrInvalidAnnotation},
		{"huge size", map[string]string{AnnotationEStargzTOCDigest: d, AnnotationUncompressedSize: strings.Repeat("9", 1<<20)}, 0, ErrInvalidAnnotation},
	}
	for _, c := range cases {
		_, size, err := ParseEStargzAnnotations(c.in)
		if !errors.Is(err, c.wantErr) || (err == nil && size != c.wantSize) {
			t.Errorf("%s: size %d, err %v; want %d, %v", c.name, size, err, c.wantSize, c.wantErr)
		}
		if err != nil && len(err.Error()) > 512 {
			t.Errorf("%s: error of %d bytes", c.name, len(err.Error()))
		}
	}
}
