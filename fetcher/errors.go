package fetcher

import "errors"

// ErrRange reports a requested range that lies outside the blob.
var ErrRange = errors.New("range outside blob")
