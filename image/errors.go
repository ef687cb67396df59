package image

import (
	"fmt"
	"strings"

	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/reader"
)

// Errors that callers can test for with errors.Is. Open wraps them with
// what failed and where: the descriptor, the layer's index and digest.
// They are the values the SDK's other image packages (registry, convert,
// image/layout, image/archive) export under the same or older names, so
// that one errors.Is serves errors of every package.
var (
	// ErrDigestMismatch reports a manifest, index, config or whole layer
	// whose bytes differ in digest or size from the descriptor that
	// names them. A document whose media type contradicts its
	// descriptor's matches it too, and ErrInvalid. It is
	// convert.ErrMismatch.
	ErrDigestMismatch = ocidoc.ErrDigestMismatch

	// ErrLimit reports an image beyond one of Open's bounds: a manifest,
	// index or config larger than WithMaxManifestSize, indexes nested
	// deeper than WithMaxIndexDepth, more layers than WithMaxLayers, or
	// a layer fetched whole larger than WithMaxWholeLayerSize. Every
	// ErrTooLarge matches it.
	ErrLimit = ocidoc.ErrLimit

	// ErrTooLarge reports a manifest, index or config over its size
	// bound. It matches ErrLimit.
	ErrTooLarge = ocidoc.ErrTooLarge

	// ErrInvalid reports a manifest, index or config that is not valid
	// JSON of its media type, or whose fields are malformed.
	ErrInvalid = ocidoc.ErrInvalid

	// ErrUnsupportedMediaType reports a manifest, index, config or layer
	// of a media type Open does not know, or a manifest of a schema
	// version other than 2 (which is also ErrInvalid). It is
	// convert.ErrUnsupported.
	ErrUnsupportedMediaType = ocidoc.ErrUnsupported

	// ErrNoPlatform reports an image index without a manifest for the
	// wanted platform; the error is a *PlatformError listing what the
	// index offers. It is convert.ErrNoPlatform.
	ErrNoPlatform = ocidoc.ErrNoPlatform

	// ErrNotSeekable reports a layer in no seekable format (a plain gzip,
	// zstd or tar layer, or a seekable layer whose descriptor lost the
	// annotations that say so): it can only be pulled whole, which Open
	// does with WithFetchWhole. It is reader.ErrNotSeekable, so that one
	// errors.Is serves errors of both packages.
	ErrNotSeekable = reader.ErrNotSeekable
)

// maxListedPlatforms bounds how many platforms a PlatformError names.
const maxListedPlatforms = 16

// PlatformError is the error of an image index that has no manifest for
// the wanted platform. It matches ErrNoPlatform.
type PlatformError struct {
	Want  string   // the platform asked for, as os/arch[/variant]
	Index string   // the index's digest
	Have  []string // the platforms it offers, at most 16 of them
	More  int      // how many more it offers
}

func (e *PlatformError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "image: index %s has no manifest for %s", e.Index, e.Want)
	if len(e.Have) == 0 {
		b.WriteString("; it lists no platform")
	} else {
		fmt.Fprintf(&b, "; it has %s", strings.Join(e.Have, ", "))
	}
	if e.More > 0 {
		fmt.Fprintf(&b, " and %d more", e.More)
	}
	return b.String()
}

// Is makes a PlatformError match ErrNoPlatform.
func (e *PlatformError) Is(target error) bool { return target == ErrNoPlatform }
