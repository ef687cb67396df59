package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/internal/retry"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of the manifests and indexes this package reads.
const (
	MediaTypeDockerManifest     = ocidoc.MediaTypeDockerManifest
	MediaTypeDockerManifestList = ocidoc.MediaTypeDockerManifestList
)

// accept is the Accept header of a manifest request: the media types
// this package reads.
var accept = strings.Join(ocidoc.ManifestTypes[:], ", ")

func isManifestType(mt string) bool {
	_, ok := ocidoc.KindOf(mt)
	return ok
}

// maxPushed bounds the manifests a Repository keeps after pushing them,
// for Tag.
const maxPushed = 16

// Repository is one repository of a registry, as an image source and
// target: it implements the Source and Target interfaces of package
// image. It is safe for concurrent use.
type Repository struct {
	c        *Client
	name     string // canonical reference
	registry string // as in references: "index.docker.io", "localhost:5000"
	repo     string // "library/ubuntu"
	tag      string // what Resolve and Tag use: the reference's tag, or "latest"
	digest   digest.Digest

	upstream *endpoint
	mirrors  []*endpoint // tried first for pulls, in order

	mu       sync.Mutex
	resolved struct { // the manifest Resolve read, for the Manifest call that follows
		desc ocispec.Descriptor
		data []byte
	}
	pushed map[digest.Digest][]byte // manifests pushed, for Tag
}

// Name returns the repository's canonical reference, such as
// "index.docker.io/library/ubuntu:latest".
func (r *Repository) Name() string { return r.name }

// pull runs op against the mirrors with capability need, in order, then
// against the registry, until one succeeds; it returns the registry's
// error if all fail.
func (r *Repository) pull(ctx context.Context, need Capability, op func(e *endpoint) error) error {
	for _, e := range r.mirrors {
		if e.caps&need == 0 {
			continue
		}
		if err := op(e); err == nil || ctx.Err() != nil {
			return err
		}
	}
	return op(r.upstream)
}

// roundTrip sends one request to e and lets read handle the response
// while it holds the attempt's deadline. Transport failures are marked
// retryable.
func (r *Repository) roundTrip(ctx context.Context, e *endpoint, method, u string, hdr http.Header, body io.Reader, size int64, read func(*http.Response) error) error {
	actx, cancel := context.WithTimeout(ctx, r.c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, method, u, body)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	if body != nil {
		req.ContentLength = size
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := e.client.Do(req)
	if err != nil {
		err = fmt.Errorf("registry: %s %s: %w", method, redact(u), err)
		if ctx.Err() != nil || errors.Is(err, ErrUnauthorized) {
			return err
		}
		return retry.Mark(err, 0)
	}
	defer resp.Body.Close()
	err = read(resp)
	io.CopyN(io.Discard, resp.Body, 4<<10) // let the connection be reused
	return err
}

// send is roundTrip with retries; body, if any, is sent again on each.
func (r *Repository) send(ctx context.Context, e *endpoint, method, u string, hdr http.Header, body []byte, read func(*http.Response) error) error {
	return r.c.retry.Do(ctx, func(int) error {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		return r.roundTrip(ctx, e, method, u, hdr, rd, int64(len(body)), read)
	})
}

// redact drops a URL's query, which may hold signed credentials.
func redact(u string) string {
	s, _, _ := strings.Cut(u, "?")
	return s
}

// Resolve returns the descriptor of the manifest or index the reference
// names: by digest if it has one, else by tag ("latest" if none). It
// reads the manifest with one GET, whose bytes the following Manifest
// call of the same descriptor returns without a request.
func (r *Repository) Resolve(ctx context.Context) (ocispec.Descriptor, error) {
	ref, need := r.tag, CapResolve
	if r.digest != "" {
		ref, need = r.digest.String(), CapPull
	}
	var desc ocispec.Descriptor
	var data []byte
	err := r.pull(ctx, need, func(e *endpoint) error {
		var err error
		desc, data, err = r.getManifest(ctx, e, ref, ocispec.Descriptor{Digest: r.digest, Size: -1})
		return err
	})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	r.mu.Lock()
	r.resolved.desc, r.resolved.data = desc, data
	r.mu.Unlock()
	return desc, nil
}

// Manifest returns the bytes of the manifest or index desc describes,
// checked against desc's digest and size. A descriptor over the client's
// manifest bound fails with ErrTooLarge, and one of a media type other
// than the OCI and Docker schema 2 manifests and indexes with
// ErrUnsupportedMediaType, before any request.
func (r *Repository) Manifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if err := r.checkManifestDescriptor(desc); err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.resolved.desc.Digest == desc.Digest && r.resolved.data != nil {
		data := r.resolved.data
		r.resolved.data = nil // once: the caller keeps them
		r.mu.Unlock()
		if desc.Size > 0 && int64(len(data)) != desc.Size {
			return nil, fmt.Errorf("registry: %s: manifest %s is %d bytes, its descriptor says %d: %w", r.name, desc.Digest, len(data), desc.Size, ErrDigestMismatch)
		}
		return data, nil
	}
	r.mu.Unlock()
	var data []byte
	err := r.pull(ctx, CapPull, func(e *endpoint) error {
		var err error
		_, data, err = r.getManifest(ctx, e, desc.Digest.String(), desc)
		return err
	})
	return data, err
}

// checkManifestDescriptor checks a manifest's descriptor before any
// request: its digest, its size within the client's bound, its media
// type, if set, one this package reads.
func (r *Repository) checkManifestDescriptor(desc ocispec.Descriptor) error {
	if err := ocidoc.CheckDescriptor(desc, r.c.maxManifest); err != nil {
		return fmt.Errorf("registry: %s: manifest %s: %w", r.name, untrusted.Short(string(desc.Digest)), err)
	}
	if desc.MediaType != "" && !isManifestType(desc.MediaType) {
		return fmt.Errorf("registry: %s: manifest %s of media type %q: %w", r.name, desc.Digest, untrusted.Short(desc.MediaType), ErrUnsupportedMediaType)
	}
	return nil
}

// readBody reads a response body of at most the client's manifest bound.
func (r *Repository) readBody(resp *http.Response) ([]byte, error) {
	data, err := ocidoc.ReadAll(resp.Body, resp.ContentLength, r.c.maxManifest)
	if err != nil && !errors.Is(err, ErrTooLarge) {
		err = retry.Mark(fmt.Errorf("reading: %w", err), 0)
	}
	return data, err
}

// getManifest GETs the manifest ref names from e, bounded by the client's
// limit, and describes it. want's digest (and its size, if >= 0), when
// set, must be the bytes'.
func (r *Repository) getManifest(ctx context.Context, e *endpoint, ref string, want ocispec.Descriptor) (ocispec.Descriptor, []byte, error) {
	var desc ocispec.Descriptor
	var data []byte
	u := e.url(r.repo, "manifests/"+ref, nil)
	hdr := http.Header{"Accept": {accept}}
	err := r.send(ctx, e, http.MethodGet, u, hdr, nil, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return responseError(resp, "manifest")
		}
		var err error
		if data, err = r.readBody(resp); err == nil {
			desc, err = describe(resp.Header, data, want)
		}
		if err != nil {
			return fmt.Errorf("registry: %s: manifest %q: %w", r.name, untrusted.Short(ref), err)
		}
		return nil
	})
	return desc, data, err
}

// describe returns the descriptor of manifest bytes data served with
// header, checking them against want and the registry's
// Docker-Content-Digest.
func describe(header http.Header, data []byte, want ocispec.Descriptor) (ocispec.Descriptor, error) {
	desc := ocispec.Descriptor{Size: int64(len(data))}
	mt, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil || !isManifestType(mt) {
		if err == nil && mt != "application/json" && mt != "text/plain" && mt != "application/octet-stream" {
			return desc, fmt.Errorf("media type %q: %w", untrusted.Short(mt), ErrUnsupportedMediaType)
		}
		if _, mt, err = ocidoc.ParseHeader(data, ""); err != nil {
			return desc, fmt.Errorf("media type %q, and none in the body: %w", untrusted.Short(header.Get("Content-Type")), ErrUnsupportedMediaType)
		}
	}
	desc.MediaType = mt
	alg := digest.Canonical
	if want.Digest != "" {
		alg = want.Digest.Algorithm()
	}
	if !alg.Available() {
		return desc, fmt.Errorf("digest %q: algorithm not available: %w", untrusted.Short(string(want.Digest)), ErrDigestMismatch)
	}
	desc.Digest = alg.FromBytes(data)
	if want.Digest != "" && desc.Digest != want.Digest {
		return desc, fmt.Errorf("content has digest %s, want %s: %w", desc.Digest, want.Digest, ErrDigestMismatch)
	}
	if want.Size > 0 && desc.Size != want.Size {
		return desc, fmt.Errorf("%d bytes, its descriptor says %d: %w", desc.Size, want.Size, ErrDigestMismatch)
	}
	if h := header.Get("Docker-Content-Digest"); h != "" {
		if said, err := digest.Parse(h); err == nil && said.Algorithm().Available() && said.Algorithm().FromBytes(data) != said {
			return desc, fmt.Errorf("content does not have the digest %s the registry says: %w", said, ErrDigestMismatch)
		}
	}
	return desc, nil
}

// Blob returns a range fetcher for the blob desc describes, sharing the
// client's transport, the repository's authentication and what the
// client learnt of hosts' range support. With mirrors, it reads from the
// first mirror that can pull, and moves on to the next host (the
// registry last) for the ranges not yet read when one fails. Its size is
// desc.Size, if set; the fetcher fails a response that disagrees.
func (r *Repository) Blob(ctx context.Context, desc ocispec.Descriptor) (fetcher.Fetcher, error) {
	if err := ocidoc.CheckDigest(desc.Digest); err != nil {
		return nil, fmt.Errorf("registry: %s: blob %w", r.name, err)
	}
	var fs []fetcher.Fetcher
	for _, e := range append(r.mirrors, r.upstream) {
		if e.caps&CapPull == 0 {
			continue
		}
		opts := []fetcher.HTTPOption{fetcher.WithAuthorizedTransport(e.rt), fetcher.WithHostTable(r.c.hosts),
			fetcher.WithRequestTimeout(r.c.timeout)}
		if desc.Size > 0 {
			opts = append(opts, fetcher.WithSize(desc.Size))
		}
		if e != r.upstream {
			opts = append(opts, fetcher.WithRetry(2, r.c.retry.BaseDelay)) // the registry is the fallback
		} else {
			opts = append(opts, fetcher.WithRetry(r.c.retry.Attempts, r.c.retry.BaseDelay))
		}
		f, err := fetcher.NewHTTP(e.url(r.repo, "blobs/"+desc.Digest.String(), nil), opts...)
		if err != nil {
			return nil, fmt.Errorf("registry: %s: %w", r.name, err)
		}
		fs = append(fs, f)
	}
	if len(fs) == 1 {
		return fs[0], nil
	}
	return &fallback{fetchers: fs}, nil
}

// Referrers returns the descriptors of the manifests whose subject is
// subject, of artifactType if it is not "", from the referrers API, or,
// where the registry has none, from the index tagged sha256-<hex> (the
// referrers tag schema). No referrers is an empty list, not an error.
func (r *Repository) Referrers(ctx context.Context, subject ocispec.Descriptor, artifactType string) ([]ocispec.Descriptor, error) {
	if err := ocidoc.CheckDigest(subject.Digest); err != nil {
		return nil, fmt.Errorf("registry: %s: subject %w", r.name, err)
	}
	var index []byte
	var api bool
	err := r.pull(ctx, CapPull, func(e *endpoint) error {
		var q url.Values
		if artifactType != "" {
			q = url.Values{"artifactType": {artifactType}}
		}
		u := e.url(r.repo, "referrers/"+subject.Digest.String(), q)
		hdr := http.Header{"Accept": {ocispec.MediaTypeImageIndex}}
		return r.send(ctx, e, http.MethodGet, u, hdr, nil, func(resp *http.Response) error {
			if resp.StatusCode == http.StatusNotFound {
				api = false
				return nil
			}
			if resp.StatusCode != http.StatusOK {
				return responseError(resp, "manifest")
			}
			data, err := r.readBody(resp)
			if err != nil {
				return fmt.Errorf("registry: %s: referrers of %s: %w", r.name, subject.Digest, err)
			}
			index, api = data, true
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if !api {
		tag := subject.Digest.Algorithm().String() + "-" + subject.Digest.Encoded()
		err := r.pull(ctx, CapResolve, func(e *endpoint) error {
			var err error
			_, index, err = r.getManifest(ctx, e, tag, ocispec.Descriptor{Size: -1})
			return err
		})
		if errors.Is(err, ErrManifestUnknown) {
			return []ocispec.Descriptor{}, nil
		}
		if err != nil {
			return nil, err
		}
	}
	idx, err := ocidoc.ParseIndex(index, math.MaxInt)
	if err != nil {
		return nil, fmt.Errorf("registry: %s: referrers index of %s: %w", r.name, subject.Digest, err)
	}
	out := []ocispec.Descriptor{}
	for _, d := range idx.Manifests {
		if artifactType == "" || d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	return out, nil
}

// Has reports whether the registry holds the blob, manifest or index desc
// describes (by its media type), with a HEAD request.
func (r *Repository) Has(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	if err := ocidoc.CheckDigest(desc.Digest); err != nil {
		return false, fmt.Errorf("registry: %s: %w", r.name, err)
	}
	kind, path := "blob", "blobs/"
	if isManifestType(desc.MediaType) {
		kind, path = "manifest", "manifests/"
	}
	var found bool
	u := r.upstream.url(r.repo, path+desc.Digest.String(), nil)
	hdr := http.Header{}
	if kind == "manifest" {
		hdr.Set("Accept", accept)
	}
	err := r.send(ctx, r.upstream, http.MethodHead, u, hdr, nil, func(resp *http.Response) error {
		switch resp.StatusCode {
		case http.StatusOK:
			found = true
			return nil
		case http.StatusNotFound:
			return nil
		}
		return responseError(resp, kind)
	})
	return found, err
}

// fallback reads a blob from the first of its fetchers that works, and
// from the next for what is left when one fails.
type fallback struct {
	mu       sync.Mutex
	fetchers []fetcher.Fetcher // the first is the one in use
}

func (f *fallback) current() (fetcher.Fetcher, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetchers[0], len(f.fetchers)
}

// failed moves on from fetcher cur, if it is still in use and not the last.
func (f *fallback) failed(cur fetcher.Fetcher) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fetchers[0] == cur && len(f.fetchers) > 1 {
		f.fetchers = f.fetchers[1:]
	}
}

func (f *fallback) Size(ctx context.Context) (int64, error) {
	for {
		cur, n := f.current()
		size, err := cur.Size(ctx)
		if err == nil || n == 1 || ctx.Err() != nil {
			return size, err
		}
		f.failed(cur)
	}
}

func (f *fallback) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	var mu sync.Mutex
	left := map[fetcher.Range]int{}
	for _, rg := range ranges {
		left[rg]++
	}
	var fnErr error
	for {
		cur, n := f.current()
		var want []fetcher.Range
		for rg, k := range left {
			for range k {
				want = append(want, rg)
			}
		}
		err := cur.Fetch(ctx, want, func(rg fetcher.Range, data []byte) error {
			if err := fn(rg, data); err != nil {
				mu.Lock()
				fnErr = err
				mu.Unlock()
				return err
			}
			mu.Lock()
			if left[rg]--; left[rg] == 0 {
				delete(left, rg)
			}
			mu.Unlock()
			return nil
		})
		mu.Lock()
		stop := fnErr != nil
		mu.Unlock()
		if err == nil || stop || n == 1 || ctx.Err() != nil {
			return err
		}
		f.failed(cur)
	}
}

// parseLocation resolves an upload Location against the request's URL.
func parseLocation(resp *http.Response) (*url.URL, error) {
	loc := resp.Header.Get("Location")
	u, err := resp.Request.URL.Parse(loc)
	if err != nil || loc == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("registry: upload location %q: %w", untrusted.Short(loc), fetcher.ErrBadResponse)
	}
	return u, nil
}
