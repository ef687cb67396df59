package ocidoc

import "errors"

// The sentinel errors of the SDK's image packages. Each public package
// exports these values under its own names (image.ErrDigestMismatch,
// convert.ErrMismatch, registry.ErrDigestMismatch, layout.ErrDigestMismatch
// are one value), so that one errors.Is serves errors of all of them.
var (
	// ErrDigestMismatch reports content whose size or digest is not the
	// one its descriptor says, or a document whose media type
	// contradicts its descriptor's (which is also ErrInvalid).
	ErrDigestMismatch = errors.New("content does not match its descriptor")

	// ErrLimit reports input beyond a bound: a count (layers, manifests,
	// index depth) or, through ErrTooLarge, a size.
	ErrLimit = errors.New("limit exceeded")

	// ErrTooLarge reports content larger than its bound. It matches
	// ErrLimit too: a size bound is a limit.
	ErrTooLarge error = &subError{"too large", ErrLimit}

	// ErrInvalid reports a document that does not parse or breaks the
	// image spec's rules, or a malformed digest or size.
	ErrInvalid = errors.New("invalid")

	// ErrUnsupported reports a media type, schema version or layer
	// compression that the SDK does not read.
	ErrUnsupported = errors.New("unsupported")

	// ErrNotFound reports a store that has no image of that name, or no
	// blob or manifest of that digest.
	ErrNotFound = errors.New("not found")

	// ErrAmbiguous reports a reference that more than one image of a
	// store answers.
	ErrAmbiguous = errors.New("ambiguous reference")

	// ErrNoPlatform reports an image that has no manifest for a wanted
	// platform.
	ErrNoPlatform = errors.New("no manifest for the platform")
)

// subError is a sentinel that also matches a broader one.
type subError struct {
	msg    string
	parent error
}

func (e *subError) Error() string { return e.msg }
func (e *subError) Unwrap() error { return e.parent }
