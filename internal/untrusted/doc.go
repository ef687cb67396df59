// Package untrusted holds helpers for handling text that comes from
// untrusted input (blobs, indexes, HTTP responses) in error messages.
package untrusted
