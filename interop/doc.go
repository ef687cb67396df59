// Package interop proves lazylayer's formats against the reference
// implementations, in both directions. It is its own module so that the
// references' dependency trees never reach lazylayer's users.
package interop
