package convert

import (
	"errors"
	"fmt"

	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
)

// The sentinel errors of this package are those of package image, under
// the names this package first gave them: ErrMismatch is
// image.ErrDigestMismatch, ErrUnsupported is image.ErrUnsupportedMediaType,
// and ErrTooLarge, ErrLimit, ErrInvalid and ErrNoPlatform are image's of
// the same name, so that one errors.Is serves errors of both packages
// (and of registry, image/layout and image/archive).
var (
	// ErrTooLarge reports a manifest, index, config or layer larger than
	// its bound (WithMaxManifestSize, WithMaxLayerSize), or a layer with
	// more files or longer names than planning may hold (WithMaxFiles).
	// It matches ErrLimit too.
	ErrTooLarge = ocidoc.ErrTooLarge
	// ErrLimit reports an image beyond a count bound: index nesting
	// (WithMaxDepth), manifests (WithMaxManifests) or layers
	// (WithMaxLayers).
	ErrLimit = ocidoc.ErrLimit
	// ErrMismatch reports content that does not match what refers to it:
	// a size or digest other than its descriptor's, a layer whose
	// uncompressed digest is not the config's DiffID, or a media type
	// that the bytes contradict (which is also ErrInvalid). It is
	// image.ErrDigestMismatch.
	ErrMismatch = ocidoc.ErrDigestMismatch
	// ErrCycle reports an index that contains itself.
	ErrCycle = errors.New("index cycle")
	// ErrUnsupported reports a media type, manifest schema or layer
	// compression that Image does not convert. It is
	// image.ErrUnsupportedMediaType.
	ErrUnsupported = ocidoc.ErrUnsupported
	// ErrInvalid reports a manifest, index or config that does not parse
	// or breaks the image spec's rules.
	ErrInvalid = ocidoc.ErrInvalid
	// ErrNoPlatform reports that a platform given to WithPlatforms is not
	// in the image. It is image.ErrNoPlatform.
	ErrNoPlatform = ocidoc.ErrNoPlatform
)

// A LayerError names the layer a conversion failed on. Its message
// names the layer by index and digest; the manifest's digest precedes
// it in the message of the error Image returns.
type LayerError struct {
	// Manifest is the digest of the manifest the layer belongs to.
	Manifest digest.Digest
	// Index is the layer's position in the manifest, 0 for the lowest.
	Index int
	// Digest is the layer blob's digest, as the manifest gives it.
	Digest digest.Digest
	Err    error
}

func (e *LayerError) Error() string {
	return fmt.Sprintf("layer %d (%s): %v", e.Index, untrusted.Short(string(e.Digest)), e.Err)
}

func (e *LayerError) Unwrap() error { return e.Err }
