package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/internal/retry"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PushBlob uploads the blob desc describes, read from rd, unless the
// registry already has it (a HEAD says so; rd is then not read). A blob
// of at most the chunk size (WithChunkSize) is read into memory, checked,
// and uploaded with one PUT; a larger one in chunks of that size (PATCH),
// checked as it streams, and committed (PUT with the digest) only if rd
// gave exactly desc.Size bytes of desc.Digest: otherwise PushBlob fails
// with ErrDigestMismatch, the upload is cancelled and nothing is stored
// under the digest.
//
// A chunked upload resumes where the registry stands: a chunk that fails
// on the way (a 5xx, a lost connection) is retried from the offset the
// upload session reports, and a PushBlob that still fails keeps its
// session, so that calling PushBlob again for the same digest on the same
// Client sends only what the registry lacks (rd is read from its start
// again, its first bytes hashed but not sent). A session the registry
// cannot report on (go-containerregistry's registry, or distribution's
// after an answer was lost, its session tokens changing with each chunk)
// is started over.
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
	if desc.Size <= r.c.chunkSize {
		return r.putWhole(ctx, desc, rd)
	}
	loc, off := r.c.takeUpload(r.key(desc.Digest)), int64(0)
	if loc != nil {
		var err error
		if off, loc, err = r.uploadStatus(ctx, loc); err != nil || off > desc.Size {
			loc, off = nil, 0 // expired or unknown: start over
		}
	}
	if loc == nil {
		var err error
		if loc, err = r.startUpload(ctx, nil); err != nil {
			return err
		}
	}
	loc, err := r.uploadChunks(ctx, loc, off, desc, rd)
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrDigestMismatch) || ctx.Err() != nil {
		r.cancelUpload(ctx, loc)
	} else {
		r.c.keepUpload(r.key(desc.Digest), loc)
	}
	return err
}

// putWhole uploads a blob of at most one chunk with one checked PUT.
func (r *Repository) putWhole(ctx context.Context, desc ocispec.Descriptor, rd io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(rd, desc.Size+1))
	if err != nil {
		return fmt.Errorf("registry: %s: reading blob %s: %w", r.name, desc.Digest, err)
	}
	if err := ocidoc.Verify(desc, data); err != nil {
		return fmt.Errorf("registry: %s: blob %s: %w", r.name, desc.Digest, err)
	}
	loc, err := r.startUpload(ctx, nil)
	if err != nil {
		return err
	}
	err = r.send(ctx, r.upstream, http.MethodPut, withDigest(loc, desc.Digest), octetStream(), data, expect(http.StatusCreated, "blob"))
	if err != nil {
		r.cancelUpload(ctx, loc)
		return fmt.Errorf("registry: %s: committing blob %s: %w", r.name, desc.Digest, err)
	}
	return nil
}

// uploadChunks sends desc's bytes from off on, read from rd, whose first
// off bytes the session already holds, and commits the blob. It returns
// the session's latest location.
func (r *Repository) uploadChunks(ctx context.Context, loc *url.URL, off int64, desc ocispec.Descriptor, rd io.Reader) (*url.URL, error) {
	h := desc.Digest.Algorithm().Hash()
	if n, err := io.CopyN(h, rd, off); err != nil {
		return loc, fmt.Errorf("registry: %s: blob %s: reader ended after %d bytes, its descriptor says %d: %w", r.name, desc.Digest, n, desc.Size, ErrDigestMismatch)
	}
	buf := make([]byte, min(r.c.chunkSize, desc.Size))
	for off < desc.Size {
		chunk := buf[:min(int64(len(buf)), desc.Size-off)]
		if n, _ := io.ReadFull(rd, chunk); n < len(chunk) {
			return loc, fmt.Errorf("registry: %s: blob %s: reader ended after %d bytes, its descriptor says %d: %w", r.name, desc.Digest, off+int64(n), desc.Size, ErrDigestMismatch)
		}
		h.Write(chunk)
		var err error
		if loc, err = r.sendChunk(ctx, loc, off, chunk); err != nil {
			return loc, fmt.Errorf("registry: %s: blob %s: chunk at %d: %w", r.name, desc.Digest, off, err)
		}
		off += int64(len(chunk))
	}
	extra, _ := io.ReadFull(rd, make([]byte, 1))
	if err := ocidoc.Compare(desc, desc.Size+int64(extra), digest.NewDigest(desc.Digest.Algorithm(), h)); err != nil {
		return loc, fmt.Errorf("registry: %s: blob %s: %w", r.name, desc.Digest, err)
	}
	err := r.roundTrip(ctx, r.upstream, http.MethodPut, withDigest(loc, desc.Digest), octetStream(), http.NoBody, 0, expect(http.StatusCreated, "blob"))
	if err != nil {
		return loc, fmt.Errorf("registry: %s: committing blob %s: %w", r.name, desc.Digest, err)
	}
	return loc, nil
}

// sendChunk PATCHes chunk, the bytes at off, retrying a failed attempt
// from where the session says the registry stands, and returns the
// session's next location.
func (r *Repository) sendChunk(ctx context.Context, loc *url.URL, off int64, chunk []byte) (*url.URL, error) {
	end := off + int64(len(chunk))
	var last error // the previous attempt's
	err := r.c.retry.Do(ctx, func(attempt int) error {
		from := off
		if attempt > 1 {
			// The last attempt may have landed whole, in part, or not at all.
			got, next, err := r.uploadStatus(ctx, loc)
			if err != nil {
				// A registry that cannot say (go-containerregistry's
				// answers 400) cannot be resumed: report what failed.
				return &retry.Final{Err: errors.Join(last, fmt.Errorf("and the upload's status is unknown: %w", err))}
			}
			if got < off || got > end {
				return fmt.Errorf("upload session holds %d bytes, want %d to %d: %w", got, off, end, fetcher.ErrBadResponse)
			}
			loc, from = next, got
			if from == end {
				return nil
			}
		}
		hdr := octetStream()
		hdr.Set("Content-Range", strconv.FormatInt(from, 10)+"-"+strconv.FormatInt(end-1, 10))
		last = r.roundTrip(ctx, r.upstream, http.MethodPatch, loc.String(), hdr, bytes.NewReader(chunk[from-off:]), end-from, func(resp *http.Response) error {
			if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusNoContent {
				return responseError(resp, "blob")
			}
			next, err := parseLocation(resp)
			if err == nil {
				loc = next
			}
			return err
		})
		return last
	})
	return loc, err
}

// uploadStatus asks how many bytes an upload session holds (GET; the
// Range header "0-<last>", absent or "0-0" on an empty session) and
// returns them with the session's location.
func (r *Repository) uploadStatus(ctx context.Context, loc *url.URL) (int64, *url.URL, error) {
	var got int64
	next := loc
	err := r.roundTrip(ctx, r.upstream, http.MethodGet, loc.String(), nil, nil, 0, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
			return responseError(resp, "blob")
		}
		if l := resp.Header.Get("Location"); l != "" {
			u, err := parseLocation(resp)
			if err != nil {
				return err
			}
			next = u
		}
		rng := resp.Header.Get("Range")
		if rng == "" {
			return nil
		}
		last, ok := strings.CutPrefix(rng, "0-")
		n, err := strconv.ParseInt(last, 10, 64)
		if !ok || err != nil || n < 0 {
			return fmt.Errorf("upload status: Range %q: %w", untrusted.Short(rng), fetcher.ErrBadResponse)
		}
		if got = n + 1; n == 0 {
			// Registries answer "0-0" for an empty session as for one
			// byte; sessions of one byte do not happen here.
			got = 0
		}
		return nil
	})
	return got, next, err
}

func octetStream() http.Header {
	return http.Header{"Content-Type": {"application/octet-stream"}}
}

// withDigest returns loc with the digest query parameter that commits an
// upload.
func withDigest(loc *url.URL, d digest.Digest) string {
	u := *loc
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	return u.String()
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

// maxKeptUploads bounds the upload sessions a Client keeps for PushBlob
// to resume.
const maxKeptUploads = 64

// key names an upload of blob d to this repository.
func (r *Repository) key(d digest.Digest) string { return r.name + "@" + d.String() }

// keepUpload remembers the session of a failed upload for the next
// PushBlob of the same blob to resume.
func (c *Client) keepUpload(key string, loc *url.URL) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.uploads == nil {
		c.uploads = make(map[string]*url.URL)
	}
	if len(c.uploads) >= maxKeptUploads {
		clear(c.uploads) // registries expire sessions anyway
	}
	c.uploads[key] = loc
}

// takeUpload returns, and forgets, the session kept for key, if any.
func (c *Client) takeUpload(key string) *url.URL {
	c.mu.Lock()
	defer c.mu.Unlock()
	loc := c.uploads[key]
	delete(c.uploads, key)
	return loc
}
