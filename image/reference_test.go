package image_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/image/layout"
	"github.com/lazylayer/lazylayer/registry"
)

func TestParseReference(t *testing.T) {
	reg, err := registry.New()
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	dir := t.TempDir()
	for _, tc := range []struct {
		ref  string
		want string // the store's kind
	}{
		{"ubuntu", "registry"},
		{"docker://localhost:5000/app:v1", "registry"},
		{"localhost:5000/app@sha256:" + zeros, "registry"},
		{"oci:" + dir + ":v1", "layout"},
		{"oci:" + dir, "layout"},
	} {
		src, err := image.ParseReference(tc.ref, reg)
		if err != nil {
			t.Errorf("%s: %v", tc.ref, err)
			continue
		}
		switch s := src.(type) {
		case *registry.Repository:
			if tc.want != "registry" {
				t.Errorf("%s: a registry repository, want a %s", tc.ref, tc.want)
			}
		case *layout.Layout:
			if tc.want != "layout" || s.Dir() != dir {
				t.Errorf("%s: layout at %s, want a %s at %s", tc.ref, s.Dir(), tc.want, dir)
			}
		default:
			t.Errorf("%s: %T", tc.ref, src)
		}
	}

	archive := filepath.Join(dir, "missing.tar")
	if _, err := image.ParseReference("docker-archive:"+archive, reg); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing archive: error %v, want one saying it does not exist", err)
	}
	if _, err := image.ParseTarget("docker-archive:"+archive, reg); err == nil {
		t.Error("an archive as a target: no error")
	}
	if _, err := image.ParseReference("ubuntu", nil); err == nil {
		t.Error("a registry reference without a client: no error")
	}
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"
