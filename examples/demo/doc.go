// Command demo shows lazy pulling end to end in a few seconds: it tars a
// real directory (your Go installation by default), builds a seekable
// eStargz layer from it, pushes the layer to a registry on the loopback
// interface, opens it lazily over HTTP and reads a few files, then says
// how little of the layer it had to fetch.
//
//	go run ./examples/demo
//	go run ./examples/demo -dir /usr/share -files doc/bash/README
//
// The registry is Debian's docker-registry when it is installed
// (apt install docker-registry), otherwise an in-process simulated
// registry; the output says which. Everything the demo creates, registry
// process and temporary files included, is gone when it exits.
package main
