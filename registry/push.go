package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/lazylayer/lazylayer/internal/iox"
	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PushBlob uploads the blob desc describes, read from rd, unless the
// registry already has it (a HEAD says so; rd is then not read). A blob
// of at most the chunk size (WithChunkSize) is read into memory, checked,
// and uploaded with one PUT; a larger one in chunks of that size (PATCH),
// checked as it streams, and committed (PUT with the digest) only if rd
// gave exactly desc.Size bytes of desc.Digest: otherwise PushBlob fails
// with ErrDigestMismatch and the upload is cancelled. A failure part-way
// (a 5xx, a lost connection) cancels the upload too, and nothing is
// stored under the digest: calling PushBlob again redoes the push.
func (r *Repository) PushBlob(ctx context.Context, desc ocispec.Descriptor, rd io.Reader) error {
	if err := ocidoc.CheckDigest(desc.Digest); err != nil {
		return fmt.Errorf("registry: %s: blob %w", r.name, err)
	}
	if desc.Size < 0 {
		return fmt.Errorf("registry: %s: blob %s: size %d: %w", r.name, desc.Digest, desc.Size, ErrInvalid)
	}
	if has, err := r.Has(ctx, ocispec.Descriptor{Digest: desc.Digest}); err != nil || has {
		return err
	}
	loc, err := r.startUpload(ctx, nil)
	if err != nil {
		return err
	}
	if err := r.upload(ctx, loc, desc, rd); err != nil {
		r.cancelUpload(ctx, loc)
		return err
	}
	return nil
}

func (r *Repository) upload(ctx context.Context, loc *url.URL, desc ocispec.Descriptor, rd io.Reader) error {
	e := r.upstream
	h := desc.Digest.Algorithm().Hash()
	var body []byte
	if desc.Size <= r.c.chunkSize {
		data, err := io.ReadAll(io.LimitReader(rd, desc.Size+1))
		if err != nil {
			return fmt.Errorf("registry: %s: reading blob %s: %w", r.name, desc.Digest, err)
		}
		if err := ocidoc.Verify(desc, data); err != nil {
			return fmt.Errorf("registry: %s: blob %s: %w", r.name, desc.Digest, err)
		}
		body = data
	} else {
		for off := int64(0); off < desc.Size; {
			n := min(r.c.chunkSize, desc.Size-off)
			cr := &iox.CountingReader{R: io.TeeReader(io.LimitReader(rd, n), h)}
			hdr := http.Header{"Content-Type": {"application/octet-stream"},
				"Content-Range": {strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+n-1, 10)}}
			err := r.roundTrip(ctx, e, http.MethodPatch, loc.String(), hdr, cr, n, func(resp *http.Response) error {
				if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusNoContent {
					return responseError(resp, "blob")
				}
				var err error
				loc, err = parseLocation(resp)
				return err
			})
			if cr.N < n {
				return fmt.Errorf("registry: %s: blob %s: reader ended after %d bytes, its descriptor says %d: %w", r.name, desc.Digest, off+cr.N, desc.Size, ErrDigestMismatch)
			}
			if err != nil {
				return fmt.Errorf("registry: %s: blob %s: chunk at %d: %w", r.name, desc.Digest, off, err)
			}
			off += n
		}
		extra, _ := io.ReadFull(rd, make([]byte, 1))
		if err := ocidoc.Compare(desc, desc.Size+int64(extra), digest.NewDigest(desc.Digest.Algorithm(), h)); err != nil {
			return fmt.Errorf("registry: %s: blob %s: %w", r.name, desc.Digest, err)
		}
	}
	q := loc.Query()
	q.Set("digest", desc.Digest.String())
	loc.RawQuery = q.Encode()
	hdr := http.Header{"Content-Type": {"application/octet-stream"}}
	var err error
	if body != nil {
		err = r.send(ctx, e, http.MethodPut, loc.String(), hdr, body, expect(http.StatusCreated, "blob"))
	} else {
		err = r.roundTrip(ctx, e, http.MethodPut, loc.String(), hdr, http.NoBody, 0, expect(http.StatusCreated, "blob"))
	}
	if err != nil {
		return fmt.Errorf("registry: %s: committing blob %s: %w", r.name, desc.Digest, err)
	}
	return nil
}

// expect returns a response check for status code want.
func expect(want int, kind string) func(*http.Response) error {
	return func(resp *http.Response) error {
		if resp.StatusCode != want {
			return responseError(resp, kind)
		}
		return nil
	}
}

// startUpload opens an upload session (POST), with query (a mount's)
// if given. It returns the session's location, or nil if the registry
// answered 201: the blob was mounted.
func (r *Repository) startUpload(ctx context.Context, query url.Values) (*url.URL, error) {
	var loc *url.URL
	u := r.upstream.url(r.repo, "blobs/uploads/", query)
	err := r.send(ctx, r.upstream, http.MethodPost, u, nil, nil, func(resp *http.Response) error {
		switch resp.StatusCode {
		case http.StatusCreated:
			return nil
		case http.StatusAccepted:
			var err error
			loc, err = parseLocation(resp)
			return err
		}
		return responseError(resp, "blob")
	})
	if err != nil {
		return nil, fmt.Errorf("registry: %s: starting an upload: %w", r.name, err)
	}
	return loc, nil
}

// cancelUpload deletes an upload session, best effort: registries also
// expire them.
func (r *Repository) cancelUpload(ctx context.Context, loc *url.URL) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	u := *loc
	q := u.Query()
	q.Del("digest")
	u.RawQuery = q.Encode()
	r.roundTrip(ctx, r.upstream, http.MethodDelete, u.String(), nil, nil, 0, func(*http.Response) error { return nil })
}

// Mount asks the registry to make the blob desc describes, which
// repository fromRepo of the same registry holds, part of this one
// without an upload. fromRepo is a repository path ("library/ubuntu") or
// reference of the same registry. It reports whether the blob was
// mounted; when it was not (the registry declined, or fromRepo is on
// another registry), the caller uploads it with PushBlob.
func (r *Repository) Mount(ctx context.Context, desc ocispec.Descriptor, fromRepo string) (bool, error) {
	if err := ocidoc.CheckDigest(desc.Digest); err != nil {
		return false, fmt.Errorf("registry: %s: blob %w", r.name, err)
	}
	from, err := name.NewRepository(fromRepo)
	if err == nil && from.RegistryStr() != r.registry {
		// Either another registry, or a bare path Docker Hub's default
		// registry was put in front of.
		from, err = name.NewRepository(r.registry + "/" + fromRepo)
	}
	if err != nil || from.RegistryStr() != r.registry || !repositoryPattern.MatchString(from.RepositoryStr()) {
		return false, nil
	}
	loc, err := r.startUpload(ctx, url.Values{"mount": {desc.Digest.String()}, "from": {from.RepositoryStr()}})
	if err != nil {
		return false, err
	}
	if loc != nil {
		r.cancelUpload(ctx, loc) // the registry opened an upload instead
		return false, nil
	}
	return true, nil
}

// PushManifest stores a manifest or index by digest, after checking that
// content is desc's size and digest and within the manifest bound. The
// Content-Type is desc.MediaType, or the body's own.
func (r *Repository) PushManifest(ctx context.Context, desc ocispec.Descriptor, content []byte) error {
	if err := r.checkManifest(desc, content); err != nil {
		return err
	}
	mt := desc.MediaType
	if mt == "" {
		_, mt, _ = ocidoc.ParseHeader(content, "")
	}
	u := r.upstream.url(r.repo, "manifests/"+desc.Digest.String(), nil)
	if err := r.send(ctx, r.upstream, http.MethodPut, u, http.Header{"Content-Type": {mt}}, content, expect(http.StatusCreated, "manifest")); err != nil {
		return fmt.Errorf("registry: %s: pushing manifest %s: %w", r.name, desc.Digest, err)
	}
	r.mu.Lock()
	if len(r.pushed) >= maxPushed {
		clear(r.pushed)
	}
	r.pushed[desc.Digest] = content
	r.mu.Unlock()
	return nil
}

func (r *Repository) checkManifest(desc ocispec.Descriptor, content []byte) error {
	if err := r.checkManifestDescriptor(desc); err != nil {
		return err
	}
	if _, err := ocidoc.ReadManifest(desc, r.c.maxManifest, func() ([]byte, error) { return content, nil }); err != nil {
		return fmt.Errorf("registry: %s: manifest %s: %w", r.name, desc.Digest, err)
	}
	return nil
}

// Tag names desc, a manifest or index the registry holds, by the
// reference's tag ("latest" if it has none) with a PUT of its bytes: those
// PushManifest sent, or else read back from the registry.
func (r *Repository) Tag(ctx context.Context, desc ocispec.Descriptor) error {
	r.mu.Lock()
	content := r.pushed[desc.Digest]
	r.mu.Unlock()
	if content == nil {
		var err error
		if content, err = r.Manifest(ctx, desc); err != nil {
			return err
		}
	}
	if err := r.checkManifest(desc, content); err != nil {
		return err
	}
	mt := desc.MediaType
	if mt == "" {
		_, mt, _ = ocidoc.ParseHeader(content, "")
	}
	u := r.upstream.url(r.repo, "manifests/"+r.tag, nil)
	if err := r.send(ctx, r.upstream, http.MethodPut, u, http.Header{"Content-Type": {mt}}, content, expect(http.StatusCreated, "manifest")); err != nil {
		return fmt.Errorf("registry: %s: tagging %s: %w", r.name, desc.Digest, err)
	}
	return nil
}
