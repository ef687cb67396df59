package cache_test

import (
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/opencontainers/go-digest"
)

func ExampleMemory() {
	c := cache.NewMemory(10) // room for ten bytes
	hello, world := []byte("hello"), []byte("world!")
	c.Add(digest.FromBytes(hello), hello)
	c.Add(digest.FromBytes(world), world) // 11 bytes: "hello" is evicted

	_, ok := c.Get(digest.FromBytes(hello))
	fmt.Println("hello cached:", ok)
	data, ok := c.Get(digest.FromBytes(world))
	fmt.Println("world cached:", ok, string(data))
	fmt.Printf("%+v\n", c.Stats())
	// Output:
	// hello cached: false
	// world cached: true world!
	// {Hits:1 Misses:1 Evictions:1 VerifyFailures:0 Entries:1 Bytes:6}
}

func ExampleNewDir() {
	dir, err := os.MkdirTemp("", "cache-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	c, err := cache.NewDir(dir, 64<<20)
	if err != nil {
		log.Fatal(err)
	}
	data := []byte("chunk bytes")
	key := digest.FromBytes(data)
	if err := c.Store(key, data); err != nil {
		log.Fatal(err)
	}

	// Another Dir on the same directory, as in another process, sees it.
	other, err := cache.NewDir(dir, 64<<20)
	if err != nil {
		log.Fatal(err)
	}
	got, err := other.Load(key)
	fmt.Println(string(got), err)
	// Output:
	// chunk bytes <nil>
}

func ExampleDir_Load() {
	dir, err := os.MkdirTemp("", "cache-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	c, err := cache.NewDir(dir, 64<<20)
	if err != nil {
		log.Fatal(err)
	}

	for _, key := range []digest.Digest{
		digest.FromString("never stored"),
		"sha256:../../etc/passwd",
	} {
		_, err := c.Load(key)
		switch {
		case errors.Is(err, cache.ErrNotFound):
			fmt.Println("miss: fetch it")
		case errors.Is(err, cache.ErrInvalidKey):
			fmt.Println("rejected key")
		}
	}
	// Output:
	// miss: fetch it
	// rejected key
}

func ExampleNewTiered() {
	dir, err := os.MkdirTemp("", "cache-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	disk, err := cache.NewDir(dir, 1<<30)
	if err != nil {
		log.Fatal(err)
	}
	memory := cache.NewMemory(64 << 20)
	c := cache.NewTiered(memory, disk)

	// An entry left on disk by an earlier run...
	data := []byte("from an earlier run")
	key := digest.FromBytes(data)
	disk.Add(key, data)

	// ...is read from disk once, then from memory.
	for range 3 {
		c.Get(key)
	}
	fmt.Println("disk hits:", disk.Stats().Hits)
	fmt.Println("memory hits:", memory.Stats().Hits)
	// Output:
	// disk hits: 1
	// memory hits: 2
}

func ExampleAddVerified() {
	c := cache.NewMemory(1 << 20)
	chunk := []byte("a chunk the caller has just hashed")
	key := digest.FromBytes(chunk)
	// A reader that verified chunk against key stores it without a
	// second hash; Add would hash it again.
	if key == digest.FromBytes(chunk) {
		cache.AddVerified(c, key, chunk)
	}
	data, ok := c.Get(key)
	fmt.Println(ok, string(data))
	// Output:
	// true a chunk the caller has just hashed
}
