// Command demo shows lazylayer end to end in a few seconds, as a user
// runs it: it builds an ordinary image from a real directory (your Go
// installation by default) as an OCI layout, starts a registry on the
// loopback interface, and runs the lazylayer command against it:
// convert the image to eStargz into the registry, inspect it, list a
// directory and print and copy files lazily, each step saying what it
// fetched.
//
//	go run ./examples/demo
//	go run ./examples/demo -dir /usr/share -file doc/bash/README
//
// The registry is Debian's docker-registry when it is installed
// (apt install docker-registry), otherwise go-containerregistry's
// in-process registry; the output says which. Everything the demo
// creates, registry process and temporary files included, is gone when it
// exits.
package main
