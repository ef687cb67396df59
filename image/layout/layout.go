package layout

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/iox"
	"github.com/lazylayer/lazylayer/internal/limits"
	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/internal/ocilayout"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Defaults of the bounds on what a layout makes this package read.
const (
	// DefaultMaxIndexSize bounds index.json.
	DefaultMaxIndexSize = 4 << 20
	// DefaultMaxManifestSize bounds a manifest or image index blob.
	DefaultMaxManifestSize = 4 << 20
	// maxLayoutFileSize bounds the oci-layout file, 30-odd bytes in
	// practice.
	maxLayoutFileSize = 4 << 10
)

var (
	// ErrNotFound is returned when the layout has no image of the name
	// asked for, or no blob of a digest asked for.
	ErrNotFound = ocidoc.ErrNotFound
	// ErrAmbiguous is returned by Resolve when several images answer the
	// layout's name, or when it has no name and the layout holds several.
	ErrAmbiguous = ocidoc.ErrAmbiguous
	// ErrInvalid is returned for a malformed oci-layout or index.json, a
	// layout of another version, and a digest that is malformed or of an
	// unknown algorithm.
	ErrInvalid = ocidoc.ErrInvalid
	// ErrTooLarge is returned for an index.json or manifest over its
	// bound.
	ErrTooLarge = ocidoc.ErrTooLarge
	// ErrDigestMismatch is returned when content does not have the size
	// or digest its descriptor says.
	//
	// ErrInvalid, ErrTooLarge and ErrDigestMismatch are the values
	// package image exports under the same names, and ErrNotFound and
	// ErrAmbiguous those of package image/archive.
	ErrDigestMismatch = ocidoc.ErrDigestMismatch
)

// An Option configures a Layout.
type Option func(*Layout)

// WithMaxIndexSize bounds the size of index.json, read by Resolve and
// rewritten by Tag. n <= 0 selects DefaultMaxIndexSize.
func WithMaxIndexSize(n int64) Option {
	return func(l *Layout) { l.maxIndex = limits.Or(n, DefaultMaxIndexSize) }
}

// WithMaxManifestSize bounds the size of a manifest or image index that
// Manifest reads. n <= 0 selects DefaultMaxManifestSize.
func WithMaxManifestSize(n int64) Option {
	return func(l *Layout) { l.maxManifest = limits.Or(n, DefaultMaxManifestSize) }
}

// Layout is an OCI image layout directory, opened with a reference name
// (possibly empty). It is an image source and an image target (the
// image.Source and image.Target interfaces). Its methods are safe for
// concurrent use. It holds no open file between calls, so it needs no
// Close. Create one with Open.
type Layout struct {
	dir         string
	ref         string
	maxIndex    int64
	maxManifest int64
	mu          sync.Mutex // serialises Tag within the Layout; see lockDir
}

// Open returns the layout in directory dir, naming the image ref: the
// value of the org.opencontainers.image.ref.name annotation of its entry
// in index.json (a tag such as "v1", or a full name such as
// "localhost/app:v1", as skopeo's oci:DIR:REF writes it). An empty ref
// names the only image of the layout.
//
// The directory need not exist: a Layout used as a target creates it,
// and its oci-layout file, on the first push. Where it exists with an
// oci-layout file, Open checks that the file says version 1.0.0.
func Open(dir, ref string, opts ...Option) (*Layout, error) {
	if dir == "" {
		return nil, errors.New("layout: empty directory name")
	}
	l := &Layout{dir: dir, ref: ref, maxIndex: DefaultMaxIndexSize, maxManifest: DefaultMaxManifestSize}
	for _, o := range opts {
		o(l)
	}
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	defer root.Close()
	if err := checkLayoutFile(root); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, l.errorf("%w", err)
	}
	return l, nil
}

// Dir returns the layout's directory, as given to Open.
func (l *Layout) Dir() string { return l.dir }

// Ref returns the reference name the layout was opened with.
func (l *Layout) Ref() string { return l.ref }

func (l *Layout) errorf(format string, args ...any) error {
	return fmt.Errorf("layout %s: "+format, append([]any{l.dir}, args...)...)
}

// Resolve returns the index.json entry of the layout's image: the one
// annotated with the layout's reference name, or the only one when the
// name is empty. It fails with ErrNotFound or ErrAmbiguous when not
// exactly one image answers.
func (l *Layout) Resolve(ctx context.Context) (ocispec.Descriptor, error) {
	if err := ctx.Err(); err != nil {
		return ocispec.Descriptor{}, err
	}
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("layout: %w", err)
	}
	defer root.Close()
	if err := checkLayoutFile(root); err != nil {
		return ocispec.Descriptor{}, l.errorf("%w", err)
	}
	idx, err := l.readIndex(root)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, err := ocilayout.Select(idx.Manifests, l.ref)
	if err != nil {
		return ocispec.Descriptor{}, l.errorf("%w", err)
	}
	return desc, nil
}

// Manifest returns the bytes of the manifest or image index desc
// describes, after checking their size and digest. It refuses a desc
// whose size is over the manifest bound before it reads anything.
func (l *Layout) Manifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := ocidoc.ReadManifest(desc, l.maxManifest, func() ([]byte, error) {
		name, _ := ocilayout.BlobPath(desc.Digest)
		root, err := os.OpenRoot(l.dir)
		if err != nil {
			return nil, err
		}
		defer root.Close()
		data, err := readFile(root, name, l.maxManifest)
		return data, notFound(err)
	})
	if err != nil {
		return nil, l.errorf("manifest %s: %w", untrusted.Short(string(desc.Digest)), err)
	}
	return data, nil
}

// Blob returns a fetcher of the blob desc describes, after checking that
// the blob is a regular file of desc's size. The fetcher opens the file
// for each read and does not check the digest.
func (l *Layout) Blob(ctx context.Context, desc ocispec.Descriptor) (fetcher.Fetcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name, err := l.blobPath(desc)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	defer root.Close()
	f, size, err := openRegular(root, name)
	if err != nil {
		return nil, l.errorf("blob %s: %w", desc.Digest, notFound(err))
	}
	f.Close()
	if size != desc.Size {
		return nil, l.errorf("blob %s: %w: %d bytes, descriptor says %d", desc.Digest, ErrDigestMismatch, size, desc.Size)
	}
	return fetcher.FromReaderAt(&blobFile{dir: l.dir, name: name}, size), nil
}

// Has reports whether the layout holds a regular file of desc's size
// under desc's digest. A file of another size does not count, so that a
// push replaces it.
func (l *Layout) Has(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	name, err := l.blobPath(desc)
	if err != nil {
		return false, err
	}
	root, err := os.OpenRoot(l.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("layout: %w", err)
	}
	defer root.Close()
	fi, err := root.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, l.errorf("%w", err)
	}
	return fi.Mode().IsRegular() && fi.Size() == desc.Size, nil
}

// PushBlob stores the blob desc describes, read from r. It writes a
// temporary file beside the blob's final name and renames it to that name
// only once r has yielded exactly desc.Size bytes of desc's digest and the
// file is synced, so that the layout never holds a partial blob under a
// digest, and concurrent pushes of one blob each rename a whole copy.
func (l *Layout) PushBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	name, err := l.blobPath(desc)
	if err != nil {
		return err
	}
	root, err := l.create()
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return l.errorf("push %s: %w", desc.Digest, err)
	}
	err = writeAtomic(root, name, func(w io.Writer) error {
		h := desc.Digest.Algorithm().Hash()
		n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(iox.ContextReader(ctx, r), desc.Size+1))
		if err != nil {
			return err
		}
		if n != desc.Size || digest.NewDigest(desc.Digest.Algorithm(), h) != desc.Digest {
			return ErrDigestMismatch
		}
		return nil
	})
	if err != nil {
		return l.errorf("push %s: %w", desc.Digest, err)
	}
	return nil
}

// PushManifest stores a manifest or image index as PushBlob does.
func (l *Layout) PushManifest(ctx context.Context, desc ocispec.Descriptor, content []byte) error {
	return l.PushBlob(ctx, desc, bytes.NewReader(content))
}

// Tag names desc, already pushed, in index.json by the layout's
// reference name: it replaces every entry of that name. With an empty
// name it adds desc without one, unless an unnamed entry of desc's digest
// is there already (as skopeo does). index.json is rewritten through a
// temporary file and a rename, under a lock on the directory (flock, on
// Unix), so that readers see the old index or the new one and concurrent
// Tags, of this process or another, all take effect.
func (l *Layout) Tag(ctx context.Context, desc ocispec.Descriptor) error {
	if ok, err := l.Has(ctx, desc); err != nil {
		return err
	} else if !ok {
		return l.errorf("tag %s: %w: not pushed", desc.Digest, ErrNotFound)
	}
	root, err := l.create()
	if err != nil {
		return err
	}
	defer root.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	unlock, err := lockDir(root)
	if err != nil {
		return l.errorf("tag: %w", err)
	}
	defer unlock()

	idx, err := l.readIndex(root)
	if errors.Is(err, fs.ErrNotExist) {
		idx, err = &ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}, nil
		idx.SchemaVersion = 2
	}
	if err != nil {
		return err
	}
	idx.Manifests = tagged(idx.Manifests, desc, l.ref)
	data, err := json.Marshal(idx)
	if err != nil {
		return l.errorf("tag: %w", err)
	}
	if int64(len(data)) > l.maxIndex {
		return l.errorf("tag: %w: %s would be %d bytes, over %d", ErrTooLarge, ocispec.ImageIndexFile, len(data), l.maxIndex)
	}
	err = writeAtomic(root, ocispec.ImageIndexFile, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return l.errorf("tag: %w", err)
	}
	return nil
}

// tagged returns manifests with desc named ref in it, in place of the
// entries named ref; an unnamed desc is added unless an unnamed entry of
// its digest is there.
func tagged(manifests []ocispec.Descriptor, desc ocispec.Descriptor, ref string) []ocispec.Descriptor {
	annotations := make(map[string]string, len(desc.Annotations)+1)
	for k, v := range desc.Annotations {
		annotations[k] = v
	}
	delete(annotations, ocispec.AnnotationRefName)
	if ref != "" {
		annotations[ocispec.AnnotationRefName] = ref
	}
	if len(annotations) == 0 {
		annotations = nil
	}
	desc.Annotations = annotations
	out := manifests[:0]
	for _, m := range manifests {
		name := ocilayout.RefName(m)
		if ref != "" && name == ref {
			continue
		}
		if ref == "" && name == "" && m.Digest == desc.Digest {
			return manifests
		}
		out = append(out, m)
	}
	return append(out, desc)
}

// blobPath checks desc and returns the path of its blob.
func (l *Layout) blobPath(desc ocispec.Descriptor) (string, error) {
	if err := ocilayout.CheckDescriptor(desc); err != nil {
		return "", fmt.Errorf("layout: %w", err)
	}
	name, _ := ocilayout.BlobPath(desc.Digest)
	return name, nil
}

// readIndex reads and parses index.json, within its bound.
func (l *Layout) readIndex(root *os.Root) (*ocispec.Index, error) {
	data, err := readFile(root, ocispec.ImageIndexFile, l.maxIndex)
	if err != nil {
		return nil, l.errorf("%w", err)
	}
	idx, err := ocilayout.ParseIndex(data)
	if err != nil {
		return nil, l.errorf("%w", err)
	}
	return idx, nil
}

// create makes the layout's directory and its oci-layout file where they
// are missing, and returns the directory opened as a root.
func (l *Layout) create() (*os.Root, error) {
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	err = checkLayoutFile(root)
	if errors.Is(err, fs.ErrNotExist) {
		err = writeAtomic(root, ocispec.ImageLayoutFile, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, `{"imageLayoutVersion":%q}`, ocispec.ImageLayoutVersion)
			return err
		})
	}
	if err != nil {
		root.Close()
		return nil, l.errorf("%w", err)
	}
	return root, nil
}

// checkLayoutFile reads and checks the layout's oci-layout file.
func checkLayoutFile(root *os.Root) error {
	data, err := readFile(root, ocispec.ImageLayoutFile, maxLayoutFileSize)
	if err != nil {
		return err
	}
	return ocilayout.ParseLayoutFile(data)
}

// notFound adds ErrNotFound to an error that says a file does not exist.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// openRegular opens name for reading, refusing anything but a regular
// file, and returns its size. It does not wait on a named pipe.
func openRegular(root *os.Root, name string) (*os.File, int64, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%w: %s is not a regular file", ErrInvalid, name)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// readFile reads the regular file name whole, refusing it, before
// reading, when it is over max bytes.
func readFile(root *os.Root, name string, max int64) ([]byte, error) {
	f, size, err := openRegular(root, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := ocidoc.ReadAll(f, size, max)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return data, nil
}

// writeAtomic creates the file name with what write writes: it writes a
// temporary file in the same directory, syncs it and renames it to name.
// It removes the temporary file when anything fails.
func writeAtomic(root *os.Root, name string, write func(io.Writer) error) (err error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path.Join(path.Dir(name), ".tmp-"+path.Base(name)+"-"+hex.EncodeToString(rnd[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			root.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return root.Rename(tmp, name)
}

// blobFile reads a blob, opening it for each read, so that a fetcher
// holds no file descriptor between reads.
type blobFile struct{ dir, name string }

func (b *blobFile) ReadAt(p []byte, off int64) (int, error) {
	root, err := os.OpenRoot(b.dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	f, err := root.OpenFile(b.name, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.ReadAt(p, off)
}
