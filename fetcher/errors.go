package fetcher

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/lazylayer/lazylayer/internal/regauth"
	"github.com/lazylayer/lazylayer/internal/untrusted"
)

// ErrRange reports a requested range that lies outside the blob.
var ErrRange = errors.New("range outside blob")

// ErrBadContentRange reports a ranged response whose Content-Range is
// missing, malformed, or not the range that was asked for.
var ErrBadContentRange = errors.New("bad Content-Range in response")

// ErrBadResponse reports a response that breaks HTTP or the distribution
// API in some other way: a wrong length, a malformed multipart body, a
// missing size.
var ErrBadResponse = regauth.ErrBadResponse

// ErrUnauthorized reports that the registry refused the request after
// authentication was tried, or that it needs credentials none were given for.
var ErrUnauthorized = regauth.ErrUnauthorized

// ErrBlobUnknown reports that the registry does not have the blob: it
// answered 404 Not Found, or gave the distribution error code
// BLOB_UNKNOWN. The *StatusError in the chain holds the registry's code
// and message.
var ErrBlobUnknown = errors.New("blob unknown")

// StatusError reports an HTTP response with an unexpected status code.
type StatusError struct {
	Method string
	URL    string // without query, which may hold signed credentials
	Code   int    // the HTTP status code
	// RegistryCode and RegistryMessage are the code (such as
	// BLOB_UNKNOWN or DENIED) and message of the first error in the
	// response's body, when it is an OCI distribution error body
	// ({"errors":[{"code":...,"message":...}]}) of at most 16 KiB. They
	// are the server's words, cut to a bounded length (untrusted.Short).
	RegistryCode    string
	RegistryMessage string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s %s: unexpected status %d %s", e.Method, e.URL, e.Code, http.StatusText(e.Code))
	if e.RegistryCode != "" || e.RegistryMessage != "" {
		s += fmt.Sprintf(": %q %q", e.RegistryCode, e.RegistryMessage)
	}
	return s
}

// maxErrorBody bounds how much of an error response's body is read for
// its distribution error.
const maxErrorBody = 16 << 10

// NewStatusError describes resp, whose status was not expected, reading
// at most 16 KiB of its body for the registry's error. Its URL is the
// request's, without query or user information.
func NewStatusError(resp *http.Response) *StatusError {
	u := *resp.Request.URL
	u.RawQuery, u.Fragment, u.User = "", "", nil
	e := &StatusError{Method: resp.Request.Method, URL: u.String(), Code: resp.StatusCode}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(data, &body) == nil && len(body.Errors) > 0 {
		e.RegistryCode = untrusted.Short(body.Errors[0].Code)
		e.RegistryMessage = untrusted.Short(body.Errors[0].Message)
	}
	return e
}
