package reader_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
)

// exampleBlob builds a small eStargz layer in memory and returns it with
// the TOC digest its descriptor would carry.
func exampleBlob() ([]byte, *writer.Result) {
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		tw.WriteHeader(h)
		io.WriteString(tw, body)
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/os-release", Mode: 0o644, Uid: 0, Uname: "root"}, "NAME=lazylayer\n")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "usr/bin/app", Mode: 0o755}, "#!/bin/sh\necho hello\n")
	add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/bin/run", Linkname: "app", Mode: 0o777}, "")
	tw.Close()

	var blob bytes.Buffer
	res, err := writer.Build(context.Background(), &blob, &tarball)
	if err != nil {
		log.Fatal(err)
	}
	return blob.Bytes(), res
}

func Example() {
	blob, res := exampleBlob()

	// A registry fetcher works the same way; here the blob is in memory.
	f := fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))
	layer, err := reader.Open(context.Background(), f, reader.WithTOCDigest(res.TOCDigest))
	if err != nil {
		log.Fatal(err)
	}
	defer layer.Close()

	data, err := fs.ReadFile(layer, "etc/os-release")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", data)

	fs.WalkDir(layer, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fmt.Println(d.Type(), name)
		return nil
	})
	// Output:
	// NAME=lazylayer
	// d--------- .
	// d--------- etc
	// ---------- etc/os-release
	// d--------- usr
	// d--------- usr/bin
	// ---------- usr/bin/app
	// L--------- usr/bin/run
}

// Sys exposes the index entry behind a name: the whole tar header.
func ExampleLayer_Lstat() {
	blob, _ := exampleBlob()
	layer, err := reader.Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))))
	if err != nil {
		log.Fatal(err)
	}
	defer layer.Close()

	fi, err := layer.Lstat("usr/bin/run")
	if err != nil {
		log.Fatal(err)
	}
	e := fi.Sys().(*toc.Entry)
	fmt.Println(fi.Mode(), e.Type, e.LinkName)

	fi, _ = layer.Stat("usr/bin/run") // follows the link
	fmt.Println(fi.Mode(), fi.Size())
	// Output:
	// Lrwxrwxrwx symlink app
	// -rwxr-xr-x 21
}

// Opened regular files support random access: only the chunks under the
// requested bytes are fetched.
func ExampleLayer_Open() {
	blob, _ := exampleBlob()
	layer, err := reader.Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))))
	if err != nil {
		log.Fatal(err)
	}
	defer layer.Close()

	f, err := layer.Open("usr/bin/app")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 10)
	n, err := f.(io.ReaderAt).ReadAt(buf, 10)
	fmt.Printf("%q %v\n", buf[:n], err)
	// Output:
	// "echo hello" <nil>
}

// A cache shared by several layers keeps every verified chunk, so a chunk
// common to two layers, or read twice, is fetched once.
func ExampleWithCache() {
	blob, _ := exampleBlob()
	chunks := cache.NewMemory(64 << 20)
	for range 2 {
		layer, err := reader.Open(context.Background(),
			fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))), reader.WithCache(chunks))
		if err != nil {
			log.Fatal(err)
		}
		if _, err := layer.ReadFile("usr/bin/app"); err != nil {
			log.Fatal(err)
		}
		layer.Close()
	}
	st := chunks.Stats()
	fmt.Println("hits:", st.Hits, "entries:", st.Entries)
	// Output:
	// hits: 1 entries: 1
}
