// Command refgen writes small eStargz blobs with the reference writer, as
// golden inputs for lazylayer's toc tests.
package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
)

func buildTar() []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	mt := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	add := func(h *tar.Header, body string) {
		h.ModTime = mt
		h.Format = tar.FormatPAX
		h.Size = int64(len(body))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if h.Size > 0 {
			io.WriteString(tw, body)
		}
	}
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "etc", Mode: 0o755, Uname: "root", Gname: "root"}, "")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/hosts", Mode: 0o644, Uname: "root", Gname: "root"}, "127.0.0.1 localhost\n")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/empty", Mode: 0o600, Uid: 1000, Gid: 1000, Uname: "app", Gname: "app"}, "")
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "bin", Mode: 0o755}, "")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/tool", Mode: 0o4755, Uid: 1000, Gid: 1000, Uname: "app", Gname: "app",
		PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02", "SCHILY.xattr.user.note": "hi"}},
		"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ") // 46 bytes: chunks 16,16,14
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/exact", Mode: 0o755, Uname: "toor", Gname: "wheel"}, "0123456789abcdef") // exactly one chunk size
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/two", Mode: 0o755}, "0123456789abcdef0123456789abcdef")                  // exactly two chunks
	add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/sh", Linkname: "tool", Mode: 0o777}, "")
	add(&tar.Header{Typeflag: tar.TypeLink, Name: "bin/tool2", Linkname: "bin/tool"}, "")
	add(&tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}, "")
	add(&tar.Header{Typeflag: tar.TypeBlock, Name: "dev/sda", Mode: 0o660, Devmajor: 8, Devminor: 0}, "")
	add(&tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o644}, "")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "big<&>", Mode: 0o644}, "x")
	tw.Close()
	return b.Bytes()
}

func main() {
	out := os.Args[1]
	raw := buildTar()
	variants := []struct {
		name string
		opts []estargz.Option
	}{
		{"small", []estargz.Option{estargz.WithChunkSize(16), estargz.WithParallelism(1), estargz.WithPrioritizedFiles([]string{"bin/tool"})}},
		{"noprefetch", []estargz.Option{estargz.WithChunkSize(16), estargz.WithParallelism(1)}},
		{"minchunk", []estargz.Option{estargz.WithChunkSize(16), estargz.WithMinChunkSize(1 << 20), estargz.WithPrioritizedFiles([]string{"etc/hosts"})}},
	}
	for _, v := range variants {
		blob, err := estargz.Build(io.NewSectionReader(bytes.NewReader(raw), 0, int64(len(raw))), v.opts...)
		if err != nil {
			panic(err)
		}
		data, err := io.ReadAll(blob)
		if err != nil {
			panic(err)
		}
		blob.Close()
		r, err := estargz.Open(io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))))
		if err != nil {
			panic(err)
		}
		tocOff, _, err := estargz.OpenFooter(io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))))
		if err != nil {
			panic(err)
		}
		// Extract the TOC JSON as the reference's decompressor sees it.
		dec := new(estargz.GzipDecompressor)
		rc, err := dec.DecompressTOC(bytes.NewReader(data[tocOff : int64(len(data))-estargz.FooterSize]))
		if err != nil {
			panic(err)
		}
		js, _ := io.ReadAll(rc)
		if err := os.WriteFile(filepath.Join(out, "estargz-"+v.name+".blob"), data, 0o644); err != nil {
			panic(err)
		}
		if err := os.WriteFile(filepath.Join(out, "estargz-"+v.name+".toc.json"), js, 0o644); err != nil {
			panic(err)
		}
		fmt.Printf("%s: %d bytes, tocOffset %d, toc digest %s (reader says %s)\n", v.name, len(data), tocOff, blob.TOCDigest(), r.TOCDigest())
	}
}
