package estargz_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"log"
	"os"

	"github.com/lazylayer/lazylayer/toc/estargz"

	"github.com/lazylayer/lazylayer/toc"
)

func ExampleParseFooter() {
	// A reader fetches the blob's last MaxFooterSize bytes (or more).
	blob, err := os.ReadFile("testdata/estargz-small.blob")
	if err != nil {
		log.Fatal(err)
	}
	tail := blob[len(blob)-toc.MaxFooterSize:]

	f, err := estargz.ParseFooter(tail)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(f.Format, f.Size, f.TOCOffset)
	// Output: estargz 51 1184
}

func ExampleFooter() {
	fmt.Printf("%x\n", estargz.Footer(0x1234))
	// Output: 1f8b08040000000000ff1a00534716003030303030303030303030303132333453544152475a010000ffff0000000000000000
}

func ExampleDecode() {
	blob, err := os.ReadFile("testdata/estargz-small.blob")
	if err != nil {
		log.Fatal(err)
	}
	f, err := estargz.ParseFooter(blob)
	if err != nil {
		log.Fatal(err)
	}
	// The TOC member sits between the TOC offset and the footer.
	t, err := estargz.Decode(blob[f.TOCOffset:len(blob)-f.Size], f.TOCOffset)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("digest:", t.Digest)
	fmt.Println("prefetch [0,", t.PrefetchEnd, ")")
	for _, e := range t.Entries[:3] {
		fmt.Println(e.Type, e.Name, e.Size, len(e.Chunks), "chunks")
	}
	// Output:
	// digest: sha256:a8f8dfd4d991ad852e83a1544e0b644ae5ec7490d1a4ffc07515266d84ecd044
	// prefetch [0, 434 )
	// dir bin 0 0 chunks
	// reg bin/tool 46 3 chunks
	// reg .prefetch.landmark 1 1 chunks
}

func Example() {
	t := &toc.TOC{Entries: []*toc.Entry{
		{Name: "etc", Type: toc.TypeDir, Mode: 0o755},
		{Name: toc.NoPrefetchLandmark, Type: toc.TypeReg, Size: 1, Digest: estargz.LandmarkDigest,
			Chunks: []toc.Chunk{{Size: 1, Digest: estargz.LandmarkDigest, FrameOffset: 42}}},
	}}
	tocJSON, err := estargz.Marshal(t)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(tocJSON))

	// The TOC member and the footer end the blob.
	var tail bytes.Buffer
	if err := estargz.WriteTOCMember(&tail, tocJSON, gzip.BestCompression); err != nil {
		log.Fatal(err)
	}
	tail.Write(estargz.Footer(100)) // 100: where the member starts in the blob
	// Output:
	// {
	// 	"version": 1,
	// 	"entries": [
	// 		{
	// 			"name": "etc",
	// 			"type": "dir",
	// 			"mode": 493
	// 		},
	// 		{
	// 			"name": ".no.prefetch.landmark",
	// 			"type": "reg",
	// 			"size": 1,
	// 			"offset": 42,
	// 			"digest": "sha256:dc0e9c3658a1a3ed1ec94274d8b19925c93e1abb7ddba294923ad9bde30f8cb8",
	// 			"chunkDigest": "sha256:dc0e9c3658a1a3ed1ec94274d8b19925c93e1abb7ddba294923ad9bde30f8cb8"
	// 		}
	// 	]
	// }
}

func ExampleParseAnnotations() {
	annotations := map[string]string{
		"containerd.io/snapshot/stargz/toc.digest": "sha256:a8f8dfd4d991ad852e83a1544e0b644ae5ec7490d1a4ffc07515266d84ecd044",
		"io.containers.estargz.uncompressed-size":  "10240",
	}
	tocDigest, size, err := estargz.ParseAnnotations(annotations)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tocDigest, size)
	// Output: sha256:a8f8dfd4d991ad852e83a1544e0b644ae5ec7490d1a4ffc07515266d84ecd044 10240
}
