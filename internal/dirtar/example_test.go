package dirtar_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/lazylayer/lazylayer/internal/dirtar"
)

func ExampleWrite() {
	dir, err := os.MkdirTemp("", "dirtar-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc", "motd"), []byte("hello\n"), 0o644)

	var buf bytes.Buffer
	st, err := dirtar.Write(&buf, dir)
	if err != nil {
		log.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		fmt.Println(h.Name, h.Size)
	}
	fmt.Printf("%d file, %d bytes\n", st.Files, st.Bytes)
	// Output:
	// etc/ 0
	// etc/motd 6
	// 1 file, 6 bytes
}
