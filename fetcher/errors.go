package fetcher

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrRange reports a requested range that lies outside the blob.
var ErrRange = errors.New("range outside blob")

// ErrBadContentRange reports a ranged response whose Content-Range is
// missing, malformed, or not the range that was asked for.
var ErrBadContentRange = errors.New("bad Content-Range in response")

// ErrBadResponse reports a response that breaks HTTP or the distribution
// API in some other way: a wrong length, a malformed multipart body, a
// missing size.
var ErrBadResponse = errors.New("malformed response")

// ErrUnauthorized reports that the registry refused the request after
// authentication was tried, or that it needs credentials none were given for.
var ErrUnauthorized = errors.New("unauthorized")

// StatusError reports an HTTP response with an unexpected status code.
type StatusError struct {
	Method string
	URL    string // without query, which may hold signed credentials
	Code   int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: unexpected status %d %s", e.Method, e.URL, e.Code, http.StatusText(e.Code))
}
