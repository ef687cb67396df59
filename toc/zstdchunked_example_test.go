package toc_test

import (
	"fmt"

	"github.com/lazylayer/lazylayer/toc"
)

// A zstd:chunked blob ends with a skippable frame that locates the TOC and
// the tar-split frames; the layer descriptor's annotations say the same.
func ExampleZstdChunkedFooter() {
	f := toc.Footer{
		TOCOffset: 1016, TOCLength: 913, TOCUncompressedLength: 2556,
		TarSplitOffset: 1937, TarSplitLength: 1070, TarSplitUncompressedLength: 15960,
	}
	footer, err := toc.ZstdChunkedFooter(f)
	if err != nil {
		panic(err)
	}
	parsed, err := toc.ParseFooter(footer)
	if err != nil {
		panic(err)
	}
	fmt.Println(parsed.Format, parsed.Size, parsed.TOCOffset, parsed.TarSplitOffset)

	a := toc.ZstdChunkedAnnotations("sha256:19039f52c7df80ea9e7d699aa82203a4b4bca3163fbe7b7c468e8a26041902c9", parsed)
	fmt.Println(a[toc.AnnotationZstdChunkedManifestPosition])
	fmt.Println(a[toc.AnnotationZstdChunkedTarSplitPosition])
	// Output:
	// zstd:chunked 72 1016 1937
	// 1016:913:2556:1
	// 1937:1070:15960
}
