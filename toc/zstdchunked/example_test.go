package zstdchunked_test

import (
	"fmt"
	"io"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/toc"

	"github.com/opencontainers/go-digest"
)

// A zstd:chunked blob ends with a skippable frame that locates the TOC and
// the tar-split frames; the layer descriptor's annotations say the same.
func ExampleFooter() {
	f := toc.Footer{
		TOCOffset: 1016, TOCLength: 913, TOCUncompressedLength: 2556,
		TarSplitOffset: 1937, TarSplitLength: 1070, TarSplitUncompressedLength: 15960,
	}
	footer, err := zstdchunked.Footer(f)
	if err != nil {
		panic(err)
	}
	parsed, err := zstdchunked.ParseFooter(footer)
	if err != nil {
		panic(err)
	}
	fmt.Println(parsed.Format, parsed.Size, parsed.TOCOffset, parsed.TarSplitOffset)

	a := zstdchunked.Annotations("sha256:19039f52c7df80ea9e7d699aa82203a4b4bca3163fbe7b7c468e8a26041902c9", "", parsed)
	fmt.Println(a[zstdchunked.AnnotationManifestPosition])
	fmt.Println(a[zstdchunked.AnnotationTarSplitPosition])
	// Output:
	// zstd:chunked 72 1016 1937
	// 1016:913:2556:1
	// 1937:1070:15960
}

// A reader decodes a zstd:chunked TOC while it downloads: here the
// compressed TOC arrives through a pipe, a few bytes at a time.
func Example() {
	js := []byte(`{"version":1,"entries":[{"type":"dir","name":"etc/","mode":493},` +
		`{"type":"symlink","name":"etc/localtime","linkName":"/usr/share/zoneinfo/UTC","mode":511}]}`)
	compressed, err := zstdchunked.CompressFrame(js, 3)
	if err != nil {
		panic(err)
	}
	pr, pw := io.Pipe()
	go func() {
		for b := compressed; len(b) > 0; b = b[min(len(b), 7):] {
			pw.Write(b[:min(len(b), 7)])
		}
		pw.Close()
	}()
	// The footer (or the manifest-position annotation) says where the
	// TOC is and how long it is.
	f := toc.Footer{Format: toc.FormatZstdChunked, TOCOffset: 4096, TOCLength: int64(len(compressed)), TOCUncompressedLength: int64(len(js))}
	t, _, err := zstdchunked.DecodeFrom(pr, f)
	if err != nil {
		panic(err)
	}
	for _, e := range t.Entries {
		fmt.Printf("%v %q %q\n", e.Type, e.Name, e.LinkName)
	}
	// Compare with the manifest-checksum annotation before use.
	fmt.Println(t.Digest == digest.FromBytes(compressed))
	// Output:
	// dir "etc" ""
	// symlink "etc/localtime" "/usr/share/zoneinfo/UTC"
	// true
}
