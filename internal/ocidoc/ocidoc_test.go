package ocidoc

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestErrTooLargeIsALimit(t *testing.T) {
	if !errors.Is(ErrTooLarge, ErrLimit) {
		t.Error("ErrTooLarge does not match ErrLimit")
	}
	if errors.Is(ErrLimit, ErrTooLarge) {
		t.Error("ErrLimit matches ErrTooLarge: a count bound is no size bound")
	}
	if ErrTooLarge.Error() != "too large" {
		t.Errorf("message %q", ErrTooLarge)
	}
}

func TestCheckDescriptor(t *testing.T) {
	good := digest.FromString("x")
	for _, tc := range []struct {
		d    ocispec.Descriptor
		want error
	}{
		{ocispec.Descriptor{Digest: good, Size: 0}, nil},
		{ocispec.Descriptor{Digest: good, Size: 10}, nil},
		{ocispec.Descriptor{Digest: good, Size: 11}, ErrTooLarge},
		{ocispec.Descriptor{Digest: good, Size: -1}, ErrInvalid},
		{ocispec.Descriptor{Digest: "sha256:xyz", Size: 1}, ErrInvalid},
		{ocispec.Descriptor{Digest: "md5:d41d8cd98f00b204e9800998ecf8427e", Size: 1}, ErrInvalid},
		{ocispec.Descriptor{Digest: digest.Digest("sha256:" + strings.Repeat("../", 1000)), Size: 1}, ErrInvalid},
	} {
		err := CheckDescriptor(tc.d, 10)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("CheckDescriptor(%.40q, %d) = %v, want %v", tc.d.Digest, tc.d.Size, err, tc.want)
		}
		if err != nil && len(err.Error()) > 512 {
			t.Errorf("error of %d bytes", len(err.Error()))
		}
	}
}

func TestReadManifest(t *testing.T) {
	b := []byte(`{"schemaVersion":2}`)
	d := ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))}
	reads := 0
	read := func(data []byte) func() ([]byte, error) {
		return func() ([]byte, error) { reads++; return data, nil }
	}
	if got, err := ReadManifest(d, 100, read(b)); err != nil || string(got) != string(b) {
		t.Fatalf("ReadManifest = %q, %v", got, err)
	}
	if _, err := ReadManifest(d, 10, read(b)); !errors.Is(err, ErrTooLarge) || reads != 1 {
		t.Errorf("descriptor over the bound: %v after %d reads, want ErrTooLarge before reading", err, reads)
	}
	if _, err := ReadManifest(d, 100, read(append(b, ' '))); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("longer content: %v, want ErrDigestMismatch", err)
	}
	if _, err := ReadManifest(d, 30, read(make([]byte, 31))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("content over the bound: %v, want ErrTooLarge", err)
	}
	other := []byte(`{"schemaVersion":3}`)
	if _, err := ReadManifest(d, 100, read(other)); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("other content: %v, want ErrDigestMismatch", err)
	}
}

func TestReadBlob(t *testing.T) {
	b := []byte(`{}`)
	d := ocispec.Descriptor{Digest: digest.FromBytes(b), Size: 2}
	f := fetcher.FromReaderAt(strings.NewReader(string(b)), 2)
	if got, err := ReadBlob(context.Background(), f, d, 2); err != nil || string(got) != "{}" {
		t.Fatalf("ReadBlob = %q, %v", got, err)
	}
	if _, err := ReadBlob(context.Background(), f, d, 1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the bound: %v", err)
	}
	empty := ocispec.Descriptor{Digest: digest.FromBytes(nil)}
	if got, err := ReadBlob(context.Background(), f, empty, 2); err != nil || got == nil || len(got) != 0 {
		t.Errorf("empty blob: %q, %v", got, err)
	}
	lying := ocispec.Descriptor{Digest: digest.FromString("}"), Size: 1}
	if _, err := ReadBlob(context.Background(), f, lying, 2); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("other content: %v, want ErrDigestMismatch", err)
	}
}

func TestReadAll(t *testing.T) {
	if b, err := ReadAll(strings.NewReader("abc"), -1, 3); err != nil || string(b) != "abc" {
		t.Errorf("ReadAll = %q, %v", b, err)
	}
	if _, err := ReadAll(strings.NewReader("abcd"), -1, 3); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the bound: %v", err)
	}
	r := strings.NewReader("abcd")
	if _, err := ReadAll(r, 4, 3); !errors.Is(err, ErrTooLarge) || r.Len() != 4 {
		t.Errorf("announced over the bound: %v, %d bytes read", err, 4-r.Len())
	}
}

func TestParseHeader(t *testing.T) {
	const (
		index    = ocispec.MediaTypeImageIndex
		manifest = ocispec.MediaTypeImageManifest
	)
	for _, tc := range []struct {
		doc, descType string
		want          Kind
		mt            string
		errs          []error
	}{
		{`{"schemaVersion":2,"mediaType":"` + index + `"}`, "", KindIndex, index, nil},
		{`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifest + `"}`, MediaTypeDockerManifest, KindManifest, MediaTypeDockerManifest, nil},
		{`{"schemaVersion":2}`, MediaTypeDockerManifestList, KindIndex, MediaTypeDockerManifestList, nil},
		{`{"schemaVersion":2,"manifests":[]}`, "", KindIndex, index, nil},
		{`{"schemaVersion":2,"config":{}}`, "", KindManifest, manifest, nil},
		{`{"schemaVersion":2}`, "", 0, "", []error{ErrUnsupported}},
		{`{"schemaVersion":2,"mediaType":"` + manifest + `"}`, index, 0, "", []error{ErrDigestMismatch, ErrInvalid}},
		{`{"schemaVersion":1,"mediaType":"` + manifest + `"}`, "", 0, "", []error{ErrUnsupported, ErrInvalid}},
		{`{"schemaVersion":2,"mediaType":"application/vnd.example"}`, "", 0, "", []error{ErrUnsupported}},
		{`{"schemaVersion":2} {}`, manifest, 0, "", []error{ErrInvalid}},
		{`{"schemaVersion":"2"}`, manifest, 0, "", []error{ErrInvalid}},
		{``, manifest, 0, "", []error{ErrInvalid}},
	} {
		k, mt, err := ParseHeader([]byte(tc.doc), tc.descType)
		if k != tc.want || mt != tc.mt {
			t.Errorf("ParseHeader(%s, %q) = %v, %q, %v; want %v, %q", tc.doc, tc.descType, k, mt, err, tc.want, tc.mt)
		}
		if (err == nil) != (tc.errs == nil) {
			t.Errorf("ParseHeader(%s, %q): error %v, want %v", tc.doc, tc.descType, err, tc.errs)
		}
		for _, want := range tc.errs {
			if !errors.Is(err, want) {
				t.Errorf("ParseHeader(%s, %q): error %v, want %v", tc.doc, tc.descType, err, want)
			}
		}
	}
}

func TestParseBounds(t *testing.T) {
	idx := `{"schemaVersion":2,"manifests":[{},{},{}]}`
	if _, err := ParseIndex([]byte(idx), 2); !errors.Is(err, ErrLimit) {
		t.Errorf("index of 3 entries, bound 2: %v", err)
	}
	m := `{"schemaVersion":2,"config":{"mediaType":"` + ocispec.MediaTypeImageConfig + `"},"layers":[{},{},{}]}`
	if _, err := ParseManifest([]byte(m), 2); !errors.Is(err, ErrLimit) {
		t.Errorf("manifest of 3 layers, bound 2: %v", err)
	}
	if _, err := ParseManifest([]byte(strings.Replace(m, "image.config", "thing", 1)), 3); !errors.Is(err, ErrUnsupported) {
		t.Errorf("config of another type: %v", err)
	}
	d := digest.FromString("x")
	c := `{"rootfs":{"type":"layers","diff_ids":["` + string(d) + `","sha256:nothex"]}}`
	if _, err := ParseConfig([]byte(c), 2); !errors.Is(err, ErrInvalid) {
		t.Errorf("malformed DiffID: %v", err)
	}
	if _, err := ParseConfig([]byte(c), 3); !errors.Is(err, ErrInvalid) {
		t.Errorf("2 DiffIDs for 3 layers: %v", err)
	}
}
