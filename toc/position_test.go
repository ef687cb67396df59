package toc

import (
	"errors"
	"strings"
	"testing"
)

func TestIndexPositionAnnotations(t *testing.T) {
	a := IndexPositionAnnotations(1000, 4096)
	if a[AnnotationIndexPosition] != "1000:3096" {
		t.Fatalf("annotations %v", a)
	}
	if off, n, err := ParseIndexPositionAnnotations(a); err != nil || off != 1000 || n != 3096 {
		t.Fatalf("ParseIndexPositionAnnotations = %d, %d, %v", off, n, err)
	}
	for _, tc := range []struct {
		value string
		want  error
	}{
		{"", ErrInvalidAnnotation},
		{"100", ErrInvalidAnnotation},
		{"100:20:3", ErrInvalidAnnotation},
		{"100:0", ErrInvalidAnnotation},
		{"-100:20", ErrInvalidAnnotation},
		{"+100:20", ErrInvalidAnnotation},
		{"100: 20", ErrInvalidAnnotation},
		{"0x10:20", ErrInvalidAnnotation},
		{"100:20 ", ErrInvalidAnnotation},
		{"99999999999999999999:20", ErrInvalidAnnotation},
		{"9223372036854775807:1", ErrInvalidAnnotation}, // the end overflows
		{strings.Repeat("1:", 1<<20), ErrInvalidAnnotation},
	} {
		_, _, err := ParseIndexPositionAnnotations(map[string]string{AnnotationIndexPosition: tc.value})
		if !errors.Is(err, tc.want) {
			t.Errorf("%q: err = %v, want %v", tc.value[:min(len(tc.value), 40)], err, tc.want)
		}
		if err != nil && len(err.Error()) > 512 {
			t.Errorf("%q: error of %d bytes", tc.value[:min(len(tc.value), 40)], len(err.Error()))
		}
	}
	if _, _, err := ParseIndexPositionAnnotations(nil); !errors.Is(err, ErrMissingAnnotation) {
		t.Errorf("no annotation: err = %v, want ErrMissingAnnotation", err)
	}
}

// FuzzParseIndexPosition checks that a position either fails with
// ErrInvalidAnnotation or is a non-empty range that formats back to the
// same numbers.
func FuzzParseIndexPosition(f *testing.F) {
	for _, s := range []string{"1000:3096", "0:1", "007:1", "9223372036854775806:1", "1:2:3", "-1:5", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		off, n, err := ParseIndexPositionAnnotations(map[string]string{AnnotationIndexPosition: s})
		if err != nil {
			if !errors.Is(err, ErrInvalidAnnotation) {
				t.Fatalf("%q: error %v does not wrap ErrInvalidAnnotation", s, err)
			}
			return
		}
		if off < 0 || n <= 0 || off+n < off {
			t.Fatalf("%q: parsed %d bytes at %d", s, n, off)
		}
		canonical := IndexPositionAnnotations(off, off+n)[AnnotationIndexPosition]
		fields := strings.Split(s, ":")
		for i, f := range fields {
			if fields[i] = strings.TrimLeft(f, "0"); fields[i] == "" {
				fields[i] = "0"
			}
		}
		if strings.Join(fields, ":") != canonical {
			t.Fatalf("%q parsed as %q", s, canonical)
		}
	})
}
