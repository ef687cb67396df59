package registry

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/internal/retry"
)

// Errors callers branch on with errors.Is. A registry's own error
// response is in the chain as a *fetcher.StatusError, with its code and
// message cut to a bounded length.
var (
	// ErrManifestUnknown reports that the registry has no manifest or
	// index by that tag or digest (404, MANIFEST_UNKNOWN, NAME_UNKNOWN).
	ErrManifestUnknown = errors.New("manifest unknown")
	// ErrBlobUnknown reports that the registry has no such blob. It is
	// fetcher.ErrBlobUnknown, so that a blob fetcher's errors match too.
	ErrBlobUnknown = fetcher.ErrBlobUnknown
	// ErrUnauthorized reports missing or refused credentials (401, 403).
	// It is fetcher.ErrUnauthorized.
	ErrUnauthorized = fetcher.ErrUnauthorized
	// ErrTooLarge reports a manifest or index over the client's bound
	// (WithMaxManifestSize), refused before more than the bound is read.
	// It is image.ErrTooLarge (and matches image.ErrLimit).
	ErrTooLarge = ocidoc.ErrTooLarge
	// ErrDigestMismatch reports content whose digest or size is not the
	// one its descriptor or the registry says. It is
	// image.ErrDigestMismatch.
	ErrDigestMismatch = ocidoc.ErrDigestMismatch
	// ErrUnsupportedMediaType reports a manifest of a media type this
	// package does not read (such as Docker schema 1). It is
	// image.ErrUnsupportedMediaType.
	ErrUnsupportedMediaType = ocidoc.ErrUnsupported
	// ErrInvalid reports a malformed digest or size in a descriptor, or a
	// referrers index that does not parse. It is image.ErrInvalid.
	ErrInvalid = ocidoc.ErrInvalid
)

// responseError describes resp, an answer with an unexpected status to a
// request about kind ("manifest" or "blob"), with the sentinel its status
// or registry error code stands for; 429 and most 5xx answers are marked
// retryable, after the Retry-After they give.
func responseError(resp *http.Response, kind string) error {
	status := fetcher.NewStatusError(resp)
	err := fmt.Errorf("registry: %w", status)
	switch code := resp.StatusCode; {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("%w: %w", err, ErrUnauthorized)
	case code == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("%w: %w", err, ErrTooLarge)
	case status.RegistryCode == "BLOB_UNKNOWN" || code == http.StatusNotFound && kind == "blob":
		return fmt.Errorf("%w: %w", err, ErrBlobUnknown)
	case status.RegistryCode == "MANIFEST_UNKNOWN" || status.RegistryCode == "NAME_UNKNOWN" || code == http.StatusNotFound:
		return fmt.Errorf("%w: %w", err, ErrManifestUnknown)
	case status.RegistryCode == "DIGEST_INVALID" || status.RegistryCode == "SIZE_INVALID":
		return fmt.Errorf("%w: %w", err, ErrDigestMismatch)
	}
	return retry.Status(resp, err)
}
