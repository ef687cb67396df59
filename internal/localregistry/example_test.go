package localregistry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"

	"github.com/lazylayer/lazylayer/internal/localregistry"
)

// Start a registry, push a blob and read part of it back. Where the
// binary is missing, a program would fall back to an in-process registry.
func Example() {
	ctx := context.Background()
	reg, err := localregistry.Start(ctx)
	if errors.Is(err, localregistry.ErrNotInstalled) {
		fmt.Println("docker-registry is not installed; use an in-process registry")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	d, err := reg.Push(ctx, "example/blob", []byte("hello, registry"))
	if err != nil {
		log.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, reg.BlobURL("example/blob", d), nil)
	req.Header.Set("Range", "bytes=7-14")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	part, _ := io.ReadAll(resp.Body)
	fmt.Printf("%s %q\n", resp.Status, part)
}
