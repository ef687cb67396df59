package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/iox"
	"github.com/lazylayer/lazylayer/internal/limits"
	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/internal/ocilayout"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Defaults of the bounds on what an archive makes this package read.
const (
	// DefaultMaxMembers bounds the number of tar headers Open reads.
	DefaultMaxMembers = 16384
	// DefaultMaxManifestSize bounds manifest.json, index.json and an
	// OCI archive's manifests.
	DefaultMaxManifestSize = 4 << 20
	// maxNameLength bounds a member's name, so that the member table
	// costs at most DefaultMaxMembers times this much.
	maxNameLength = 512
	// maxLinkHops bounds how many links lead to a member.
	maxLinkHops = 8
)

var (
	// ErrNotArchive is returned by Open for a file that is not a tar, or
	// a tar with neither a manifest.json nor an index.json.
	ErrNotArchive = errors.New("not an image archive")
	// ErrNotFound is returned when the archive has no image of the
	// reference asked for, no member that its manifest.json names, or no
	// blob or manifest of a digest asked for.
	ErrNotFound = ocidoc.ErrNotFound
	// ErrAmbiguous is returned by Open when several images answer the
	// reference, or when it is empty and the archive holds several.
	ErrAmbiguous = ocidoc.ErrAmbiguous
	// ErrInvalid is returned for a malformed tar, manifest.json or
	// index.json, a duplicate or over-long member name, a sparse member,
	// links that go round, and a malformed digest.
	ErrInvalid = ocidoc.ErrInvalid
	// ErrTooLarge is returned when the archive has more members than
	// its bound, or a manifest over its bound.
	ErrTooLarge = ocidoc.ErrTooLarge
	// ErrDigestMismatch is returned when a blob does not have the size
	// or digest its descriptor says.
	//
	// ErrInvalid, ErrTooLarge and ErrDigestMismatch are the values
	// package image exports under the same names, and ErrNotFound and
	// ErrAmbiguous those of package image/layout.
	ErrDigestMismatch = ocidoc.ErrDigestMismatch
)

// An Option configures an Archive.
type Option func(*Archive)

// WithMaxMembers bounds the number of tar headers (files, directories,
// links) the archive may hold. n <= 0 selects DefaultMaxMembers.
func WithMaxMembers(n int) Option {
	return func(a *Archive) { a.maxMembers = limits.Or(n, DefaultMaxMembers) }
}

// WithMaxManifestSize bounds manifest.json, index.json and the manifests
// of an OCI archive. n <= 0 selects DefaultMaxManifestSize.
func WithMaxManifestSize(n int64) Option {
	return func(a *Archive) { a.maxManifest = limits.Or(n, DefaultMaxManifestSize) }
}

// member is a file of the tar: its data's place in the file, or the
// target of a link to it.
type member struct {
	off, size int64
	link      string // cleaned name of the member it links to, if a link
}

// dockerImage is an entry of a docker-archive's manifest.json.
type dockerImage struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Archive is an image archive, opened with a reference: a source of one
// image (package image's Source interface). Its methods are safe for
// concurrent use. Close it when done: it holds the archive file open, and
// the fetchers it hands out read from it.
type Archive struct {
	r           *io.SectionReader // the whole archive
	closer      io.Closer         // the file Open opened, or nil
	path        string            // for errors: the file's, or "(reader)"
	maxMembers  int
	maxManifest int64
	members     map[string]member

	// OCI flavour: the index.json entry of the image.
	oci *ocispec.Descriptor

	// Docker flavour: the manifest.json entry of the image and, once
	// synthesize has run, its manifest and the members of its blobs.
	docker   *dockerImage
	mu       sync.Mutex
	manifest []byte
	desc     ocispec.Descriptor
	blobs    map[digest.Digest]member
}

// Open opens the archive at path: a tar written by docker save or podman
// save in either of its formats (docker-archive, with a manifest.json;
// oci-archive, a tarred OCI layout), naming the image ref. For a
// docker-archive, ref is one of the image's RepoTags (compared as
// references, so "busybox" matches "docker.io/library/busybox:latest"),
// or "@N" for the Nth entry of manifest.json, counted from 0; for an
// oci-archive, the org.opencontainers.image.ref.name annotation of its
// index.json entry. An empty ref names the only image of the archive.
//
// Open reads the tar's headers once, without reading the members' data
// beyond manifest.json or index.json, and checks that the members the
// image needs are there.
func Open(path, ref string, opts ...Option) (*Archive, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("archive: %w", err)
	}
	a, err := newArchive(f, fi.Size(), path, ref, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	a.closer = f
	return a, nil
}

// New opens the archive of size bytes that r reads, as Open does a
// file. r must be safe for concurrent ReadAt calls, as io.ReaderAt
// requires; Close does not close it.
func New(r io.ReaderAt, size int64, ref string, opts ...Option) (*Archive, error) {
	return newArchive(r, size, "(reader)", ref, opts)
}

func newArchive(r io.ReaderAt, size int64, path, ref string, opts []Option) (*Archive, error) {
	a := &Archive{r: io.NewSectionReader(r, 0, size), path: path, maxMembers: DefaultMaxMembers, maxManifest: DefaultMaxManifestSize}
	for _, o := range opts {
		o(a)
	}
	if err := a.open(ref); err != nil {
		return nil, fmt.Errorf("archive %s: %w", path, err)
	}
	return a, nil
}

// Close closes the file Open opened; fetchers of its blobs fail
// afterwards. It does nothing for an Archive made by New.
func (a *Archive) Close() error {
	if a.closer == nil {
		return nil
	}
	return a.closer.Close()
}

func (a *Archive) open(ref string) error {
	if err := a.scan(); err != nil {
		return err
	}
	if _, ok := a.members["manifest.json"]; ok {
		return a.openDocker(ref)
	}
	if _, ok := a.members[ocispec.ImageIndexFile]; ok {
		return a.openOCI(ref)
	}
	return fmt.Errorf("%w: no manifest.json or %s", ErrNotArchive, ocispec.ImageIndexFile)
}

// scan reads the tar's headers and records its files and links.
func (a *Archive) scan() error {
	a.members = make(map[string]member)
	tr := tar.NewReader(a.r)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF && n > 0 {
			return nil
		}
		if err != nil {
			if n == 0 {
				return fmt.Errorf("%w: %w", ErrNotArchive, err)
			}
			return fmt.Errorf("%w: after member %d: %w", ErrInvalid, n, untrusted.Err(err))
		}
		if n >= a.maxMembers {
			return fmt.Errorf("%w: over %d members", ErrTooLarge, a.maxMembers)
		}
		if len(hdr.Name) > maxNameLength {
			return fmt.Errorf("%w: member %d: name of %d bytes, over %d", ErrInvalid, n, len(hdr.Name), maxNameLength)
		}
		name, ok := clean(hdr.Name)
		var m member
		switch hdr.Typeflag {
		case tar.TypeReg:
			for k := range hdr.PAXRecords {
				if strings.HasPrefix(k, "GNU.sparse.") {
					return fmt.Errorf("%w: member %q: sparse", ErrInvalid, untrusted.Short(hdr.Name))
				}
			}
			off, err := a.r.Seek(0, io.SeekCurrent)
			if err != nil {
				return err
			}
			if hdr.Size > a.r.Size()-off {
				return fmt.Errorf("%w: member %q: %d bytes, past the end of the file", ErrInvalid, untrusted.Short(hdr.Name), hdr.Size)
			}
			m = member{off: off, size: hdr.Size}
		case tar.TypeSymlink, tar.TypeLink:
			target := hdr.Linkname // a hard link's, from the root
			if hdr.Typeflag == tar.TypeSymlink && !path.IsAbs(target) {
				target = path.Join(path.Dir(name), target)
			}
			var in bool
			if m.link, in = clean(target); !in {
				continue // a link out of the archive names nothing in it
			}
		case tar.TypeGNUSparse:
			return fmt.Errorf("%w: member %q: sparse", ErrInvalid, untrusted.Short(hdr.Name))
		default:
			continue // directories and the like name no blob
		}
		if !ok {
			continue // a name out of the archive's root: nothing refers to it
		}
		if _, dup := a.members[name]; dup {
			return fmt.Errorf("%w: member %q appears twice", ErrInvalid, untrusted.Short(name))
		}
		a.members[name] = m
	}
}

// clean returns name as a path relative to the archive's root, and
// whether it is one (not absolute, not out of it).
func clean(name string) (string, bool) {
	name = path.Clean(name)
	if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") || name == "." {
		return "", false
	}
	return name, true
}

// member returns the regular file the archive has under name, following
// links.
func (a *Archive) member(name string) (member, error) {
	cur, ok := clean(name)
	if !ok {
		return member{}, fmt.Errorf("%w: member %q: not a path inside the archive", ErrInvalid, untrusted.Short(name))
	}
	for range maxLinkHops + 1 {
		m, ok := a.members[cur]
		if !ok {
			return member{}, fmt.Errorf("%w: member %q", ErrNotFound, untrusted.Short(name))
		}
		if m.link == "" {
			return m, nil
		}
		cur = m.link
	}
	return member{}, fmt.Errorf("%w: member %q: over %d links", ErrInvalid, untrusted.Short(name), maxLinkHops)
}

// readMember reads the member name whole, refusing it before reading
// when it is over the manifest bound.
func (a *Archive) readMember(name string) ([]byte, error) {
	m, err := a.member(name)
	if err != nil {
		return nil, err
	}
	if m.size > a.maxManifest {
		return nil, fmt.Errorf("%w: %s: %d bytes, over %d", ErrTooLarge, name, m.size, a.maxManifest)
	}
	data := make([]byte, m.size)
	// io.ReaderAt may report io.EOF with every byte read, as bytes.Reader
	// does for an empty member at the very end of the file.
	if n, err := a.r.ReadAt(data, m.off); n < len(data) {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, name, err)
	}
	return data, nil
}

// openDocker picks the image ref names from manifest.json.
func (a *Archive) openDocker(ref string) error {
	data, err := a.readMember("manifest.json")
	if err != nil {
		return err
	}
	var images []dockerImage
	if err := json.Unmarshal(data, &images); err != nil {
		return fmt.Errorf("%w: manifest.json: %w", ErrInvalid, untrusted.Err(err))
	}
	i, err := selectDocker(images, ref)
	if err != nil {
		return err
	}
	im := &images[i]
	if _, err := a.member(im.Config); err != nil {
		return fmt.Errorf("manifest.json: image %d: config: %w", i, err)
	}
	for j, l := range im.Layers {
		if _, err := a.member(l); err != nil {
			return fmt.Errorf("manifest.json: image %d: layer %d: %w", i, j, err)
		}
	}
	a.docker = im
	return nil
}

// selectDocker returns the index of the image ref names in manifest.json.
func selectDocker(images []dockerImage, ref string) (int, error) {
	if n, ok := strings.CutPrefix(ref, "@"); ok {
		i, err := strconv.Atoi(n)
		if err != nil || i < 0 || i >= len(images) {
			return 0, fmt.Errorf("%w: no image %q among %d", ErrNotFound, untrusted.Short(ref), len(images))
		}
		return i, nil
	}
	want := normalize(ref)
	found := -1
	for i, im := range images {
		match := ref == ""
		for _, tag := range im.RepoTags {
			match = match || tag == ref || normalize(tag) == want && want != ""
		}
		if !match {
			continue
		}
		if found >= 0 {
			if ref == "" {
				return 0, fmt.Errorf("%w: %d images and no reference given", ErrAmbiguous, len(images))
			}
			return 0, fmt.Errorf("%w: images %d and %d are both %q", ErrAmbiguous, found, i, untrusted.Short(ref))
		}
		found = i
	}
	if found < 0 {
		if ref == "" {
			return 0, fmt.Errorf("%w: no image", ErrNotFound)
		}
		return 0, fmt.Errorf("%w: no image %q", ErrNotFound, untrusted.Short(ref))
	}
	return found, nil
}

// normalize returns ref in full ("docker.io/library/busybox:latest" for
// "busybox"), or "" if it is no reference.
func normalize(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ""
	}
	return r.Name()
}

// openOCI picks the image ref names from index.json.
func (a *Archive) openOCI(ref string) error {
	if data, err := a.readMember(ocispec.ImageLayoutFile); err == nil {
		if err := ocilayout.ParseLayoutFile(data); err != nil {
			return err
		}
	}
	data, err := a.readMember(ocispec.ImageIndexFile)
	if err != nil {
		return err
	}
	idx, err := ocilayout.ParseIndex(data)
	if err != nil {
		return err
	}
	desc, err := ocilayout.Select(idx.Manifests, ref)
	if err != nil {
		return err
	}
	a.oci = &desc
	return nil
}

// Resolve returns the descriptor of the image's manifest: for an
// oci-archive, its index.json entry; for a docker-archive, that of an
// OCI manifest made from manifest.json. Making it reads the config and
// every layer of the image once, in parallel, for their digests; the
// first call that succeeds does it.
func (a *Archive) Resolve(ctx context.Context) (ocispec.Descriptor, error) {
	if a.oci != nil {
		return *a.oci, ctx.Err()
	}
	if err := a.synthesize(ctx); err != nil {
		return ocispec.Descriptor{}, err
	}
	return a.desc, nil
}

// Manifest returns the bytes of the manifest desc describes: an
// oci-archive's member, checked against desc's size and digest, or a
// docker-archive's made-up manifest.
func (a *Archive) Manifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if err := ocilayout.CheckDescriptor(desc); err != nil {
		return nil, fmt.Errorf("archive %s: %w", a.path, err)
	}
	if a.oci == nil {
		if err := a.synthesize(ctx); err != nil {
			return nil, err
		}
		if desc.Digest != a.desc.Digest {
			return nil, fmt.Errorf("archive %s: manifest %s: %w", a.path, desc.Digest, ErrNotFound)
		}
		return a.manifest, nil
	}
	data, err := ocidoc.ReadManifest(desc, a.maxManifest, func() ([]byte, error) {
		name, _ := ocilayout.BlobPath(desc.Digest)
		return a.readMember(name)
	})
	if err != nil {
		return nil, fmt.Errorf("archive %s: manifest %s: %w", a.path, desc.Digest, err)
	}
	return data, nil
}

// Blob returns a fetcher of the config or layer desc describes, reading
// the member's bytes in place from the archive file. For a
// docker-archive, the digest was computed by Resolve; for an oci-archive,
// the fetcher does not check it.
func (a *Archive) Blob(ctx context.Context, desc ocispec.Descriptor) (fetcher.Fetcher, error) {
	if err := ocilayout.CheckDescriptor(desc); err != nil {
		return nil, fmt.Errorf("archive %s: %w", a.path, err)
	}
	var (
		m   member
		err error
	)
	if a.oci == nil {
		if err := a.synthesize(ctx); err != nil {
			return nil, err
		}
		var ok bool
		if m, ok = a.blobs[desc.Digest]; !ok {
			err = ErrNotFound
		}
	} else {
		name, _ := ocilayout.BlobPath(desc.Digest)
		m, err = a.member(name)
	}
	if err != nil {
		return nil, fmt.Errorf("archive %s: blob %s: %w", a.path, desc.Digest, err)
	}
	if m.size != desc.Size {
		return nil, fmt.Errorf("archive %s: blob %s: %w: %d bytes, descriptor says %d", a.path, desc.Digest, ErrDigestMismatch, m.size, desc.Size)
	}
	return fetcher.FromReaderAt(io.NewSectionReader(a.r, m.off, m.size), m.size), nil
}

// synthesize makes a docker-archive image's OCI manifest, once: it hashes
// the config and layers, in parallel, and detects each layer's
// compression by its magic number.
func (a *Archive) synthesize(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.manifest != nil {
		return nil
	}
	im := a.docker
	names := append([]string{im.Config}, im.Layers...)
	descs := make([]ocispec.Descriptor, len(names))
	members := make([]member, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			members[i], errs[i] = a.member(n)
			if errs[i] == nil {
				descs[i], errs[i] = a.hash(ctx, members[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("archive %s: %w", a.path, err)
	}
	descs[0].MediaType = ocispec.MediaTypeImageConfig
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: descs[0], Layers: descs[1:]}
	m.SchemaVersion = 2
	if m.Layers == nil {
		m.Layers = []ocispec.Descriptor{}
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("archive %s: %w", a.path, err)
	}
	a.blobs = make(map[digest.Digest]member, len(names))
	for i, d := range descs {
		a.blobs[d.Digest] = members[i]
	}
	a.desc = ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	a.manifest = data
	return nil
}

// hash returns the descriptor of member m: its digest, size and, by its
// first bytes, the media type of a layer of its compression.
func (a *Archive) hash(ctx context.Context, m member) (ocispec.Descriptor, error) {
	d := digest.SHA256.Digester()
	var head [4]byte
	r := io.NewSectionReader(a.r, m.off, m.size)
	n, _ := io.ReadFull(r, head[:])
	d.Hash().Write(head[:n])
	if _, err := io.CopyBuffer(d.Hash(), iox.ContextReader(ctx, r), make([]byte, min(m.size, 1<<20)+1)); err != nil {
		return ocispec.Descriptor{}, err
	}
	mediaType := ocispec.MediaTypeImageLayer
	switch {
	case bytes.HasPrefix(head[:n], []byte{0x1f, 0x8b}):
		mediaType = ocispec.MediaTypeImageLayerGzip
	case bytes.HasPrefix(head[:n], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		mediaType = ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d.Digest(), Size: m.size}, nil
}
