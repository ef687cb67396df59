// Package dirtar writes a directory tree as a deterministic tar stream:
// the input from which examples/bench and examples/demo build layers.
package dirtar
