// Package cli is the lazylayer command: cmd/lazylayer runs it as a
// program, and examples/demo runs it in-process to show what a user
// types. Each verb is a cobra command over the SDK's packages.
package cli
