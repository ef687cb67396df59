package archive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/image/archive"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzOpenArchive (seeds in testdata/fuzz: docker-archives of each
// flavour and an oci-archive) opens any bytes as an archive: it fails
// with one of the package's errors or yields an image whose manifest,
// config and layers read back at the sizes they claim, all within the
// archive.
//
// A tar costs 512 bytes a header, so the seeds are a few kilobytes and the
// engine's minimization of each new input (quadratic in its length)
// would take its whole timeout: run it as .ci/run does, with
// -fuzzminimizetime 100x.
func FuzzOpenArchive(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, ref string) {
		ctx := context.Background()
		a, err := archive.New(bytes.NewReader(data), int64(len(data)), ref, archive.WithMaxMembers(64))
		if err != nil {
			for _, want := range []error{archive.ErrNotArchive, archive.ErrInvalid, archive.ErrNotFound, archive.ErrAmbiguous, archive.ErrTooLarge} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("Open: an error of no sentinel: %v", err)
		}
		desc, err := a.Resolve(ctx)
		if err != nil {
			return
		}
		manifest, err := a.Manifest(ctx, desc)
		if err != nil {
			return
		}
		var m ocispec.Manifest
		if json.Unmarshal(manifest, &m) != nil {
			return
		}
		for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			f, err := a.Blob(ctx, d)
			if err != nil {
				continue
			}
			if size, _ := f.Size(ctx); size != d.Size || size > int64(len(data)) {
				t.Fatalf("blob %s: fetcher of %d bytes, descriptor says %d", d.Digest, size, d.Size)
			}
			err = f.Fetch(ctx, []fetcher.Range{{Offset: 0, Length: d.Size}}, func(fetcher.Range, []byte) error { return nil })
			if err != nil {
				t.Fatalf("blob %s: %v", d.Digest, err)
			}
		}
	})
}
