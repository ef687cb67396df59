package cache

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
)

var benchSizes = []int{4 << 10, 4 << 20}

func benchmarkGet(b *testing.B, newCache func(b *testing.B) Cache) {
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			c := newCache(b)
			e := newEntry(1, size)
			c.Add(e.key, e.data)
			if _, ok := c.Get(e.key); !ok {
				b.Fatal("entry not cached")
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := c.Get(e.key); !ok {
					b.Fatal("miss")
				}
			}
		})
	}
}

// benchmarkAdd adds new entries only: it cycles through four times as many
// entries as the cache holds, so in LRU order each has been evicted before
// it comes round again. Eviction is part of the measured cost.
func benchmarkAdd(b *testing.B, newCache func(b *testing.B, maxBytes int64) Cache) {
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			const held = 16
			c := newCache(b, held*int64(size))
			entries := newEntries(4*held, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e := entries[i%len(entries)]
				c.Add(e.key, e.data)
				i++
			}
		})
	}
}

func sizeName(size int) string {
	if size >= 1<<20 {
		return fmt.Sprintf("%dMiB", size>>20)
	}
	return fmt.Sprintf("%dKiB", size>>10)
}

func newBenchDir(b *testing.B, maxBytes int64) Cache {
	d, err := NewDir(b.TempDir(), maxBytes)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func BenchmarkMemoryGet(b *testing.B) {
	benchmarkGet(b, func(*testing.B) Cache { return NewMemory(64 << 20) })
}

func BenchmarkDirGet(b *testing.B) {
	benchmarkGet(b, func(b *testing.B) Cache { return newBenchDir(b, 64<<20) })
}

func BenchmarkTieredGet(b *testing.B) {
	benchmarkGet(b, func(b *testing.B) Cache {
		return NewTiered(NewMemory(64<<20), newBenchDir(b, 64<<20))
	})
}

func BenchmarkMemoryAdd(b *testing.B) {
	benchmarkAdd(b, func(_ *testing.B, maxBytes int64) Cache { return NewMemory(maxBytes) })
}

func BenchmarkDirAdd(b *testing.B) {
	benchmarkAdd(b, newBenchDir)
}

// BenchmarkDirStoreFresh stores 2000 entries of 16 KiB, the size of most
// chunks of small files, into a new Dir on the disk that holds the
// temporary directory, as a container start fills the snapshotter's
// cache. Creating files dominates it where a file create is slow.
func BenchmarkDirStoreFresh(b *testing.B) {
	const n, size = 2000, 16 << 10
	entries := newEntries(n, size)
	root := b.TempDir()
	b.SetBytes(n * size)
	i := 0
	for b.Loop() {
		d, err := NewDir(filepath.Join(root, strconv.Itoa(i)), 1<<30)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range entries {
			d.AddVerified(e.key, e.data)
		}
		i++
	}
}
