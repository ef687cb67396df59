package interop

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
)

var gorootBlob struct {
	once  sync.Once
	blob  []byte
	files []string // regular files, in TOC order
	bytes int64    // their total size
}

// loadGorootBlob returns the reference eStargz blob of the Go toolchain
// tree with default options (referenceGorootBlob) and lists its regular
// files, once per process.
func loadGorootBlob(tb testing.TB) ([]byte, []string, int64) {
	gorootBlob.once.Do(func() {
		gorootBlob.blob, _ = referenceGorootBlob(tb)
		l, err := reader.Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(gorootBlob.blob), int64(len(gorootBlob.blob))))
		if err != nil {
			tb.Fatal(err)
		}
		defer l.Close()
		for _, e := range l.TOC().Entries {
			if e.Type == toc.TypeReg && e.Name != toc.NoPrefetchLandmark && e.Name != toc.PrefetchLandmark {
				gorootBlob.files = append(gorootBlob.files, e.Name)
				gorootBlob.bytes += e.Size
			}
		}
	})
	if gorootBlob.blob == nil {
		tb.Fatal("GOROOT blob unavailable")
	}
	return gorootBlob.blob, gorootBlob.files, gorootBlob.bytes
}

// BenchmarkReadGoroot reads every regular file of a GOROOT eStargz blob
// held in memory, through our reader (which verifies every chunk) and
// through the reference reader (which verifies nothing). MB/s counts
// uncompressed file bytes.
func BenchmarkReadGoroot(b *testing.B) {
	readEachFile(b, func(l *reader.Layer, name string) error {
		_, err := l.ReadFile(name)
		return err
	}, func(r *estargz.Reader, name string) error {
		sr, err := r.OpenFile(name)
		if err != nil {
			return err
		}
		_, err = io.ReadFull(sr, make([]byte, sr.Size()))
		return err
	})
}

// readEachFile runs two sub-benchmarks over the GOROOT blob: each opens
// the blob with one reader and hands every regular file to read.
func readEachFile(b *testing.B, lazy func(*reader.Layer, string) error, ref func(*estargz.Reader, string) error) {
	blob, files, total := loadGorootBlob(b)
	b.Run("lazylayer", func(b *testing.B) {
		b.SetBytes(total)
		defer reportCPU(b)()
		for b.Loop() {
			l, err := reader.Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))))
			if err != nil {
				b.Fatal(err)
			}
			for _, name := range files {
				if err := lazy(l, name); err != nil {
					b.Fatal(err)
				}
			}
			l.Close()
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.SetBytes(total)
		defer reportCPU(b)()
		for b.Loop() {
			r, err := estargz.Open(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))))
			if err != nil {
				b.Fatal(err)
			}
			for _, name := range files {
				if err := ref(r, name); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkReadGorootStreaming reads every regular file of the GOROOT
// blob the way cat, tar or http.ServeContent do: io.Copy with a 32 KiB
// buffer, neither side offering WriterTo or ReaderFrom, so each file is
// read in 32 KiB Reads. The reference's file reader decompresses its
// chunk from the start on every read it cannot serve from its last
// position, so unlike BenchmarkReadGoroot's one whole-file read per file,
// this measures what many small reads cost each reader. The reference
// pass is slow (about a minute on a 2-core machine): run it with
// -benchtime 1x.
func BenchmarkReadGorootStreaming(b *testing.B) {
	buf := make([]byte, 32<<10)
	stream := func(r io.Reader) error {
		_, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{r}, buf)
		return err
	}
	readEachFile(b, func(l *reader.Layer, name string) error {
		f, err := l.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		return stream(f)
	}, func(r *estargz.Reader, name string) error {
		sr, err := r.OpenFile(name)
		if err != nil {
			return err
		}
		return stream(sr)
	})
}

// BenchmarkReadGorootParallel reads every regular file of the GOROOT blob
// with GOMAXPROCS goroutines sharing one opened layer, through both
// readers.
func BenchmarkReadGorootParallel(b *testing.B) {
	blob, files, total := loadGorootBlob(b)
	workers := runtime.GOMAXPROCS(0)
	readAll := func(b *testing.B, read func(name string) error) {
		next := make(chan string)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for name := range next {
					if err := read(name); err != nil {
						b.Error(err)
					}
				}
			})
		}
		for _, name := range files {
			next <- name
		}
		close(next)
		wg.Wait()
	}
	b.Run("lazylayer", func(b *testing.B) {
		b.SetBytes(total)
		defer reportCPU(b)()
		for b.Loop() {
			l, err := reader.Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))))
			if err != nil {
				b.Fatal(err)
			}
			readAll(b, func(name string) error {
				_, err := l.ReadFile(name)
				return err
			})
			l.Close()
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.SetBytes(total)
		defer reportCPU(b)()
		for b.Loop() {
			r, err := estargz.Open(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))))
			if err != nil {
				b.Fatal(err)
			}
			readAll(b, func(name string) error {
				sr, err := r.OpenFile(name)
				if err != nil {
					return err
				}
				_, err = io.ReadFull(sr, make([]byte, sr.Size()))
				return err
			})
		}
	})
}

// reportCPU reports the process CPU time per operation: on a shared
// machine it is steadier than wall time, though it hides parallelism.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		b.ReportMetric(float64((cpu()-start).Milliseconds())/float64(b.N), "cpu-ms/op")
	}
}
