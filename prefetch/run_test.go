package prefetch_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/overlay"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// file is one regular file of a test layer.
type file struct {
	name string
	data []byte
}

// randomFile returns a file of n incompressible bytes.
func randomFile(name string, n int, seed uint64) file {
	r := rand.New(rand.NewPCG(seed, 1))
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	return file{name, data}
}

// tarOf writes files as a tar.
func tarOf(t testing.TB, files []file) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg})
		tw.Write(f.data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// buildLayer builds an eStargz blob of files.
func buildLayer(t testing.TB, files []file, opts ...writer.Option) []byte {
	t.Helper()
	var blob bytes.Buffer
	if _, err := writer.Build(context.Background(), &blob, tarOf(t, files), opts...); err != nil {
		t.Fatal(err)
	}
	return blob.Bytes()
}

// recordingFetcher remembers the ranges of each Fetch call, in order.
type recordingFetcher struct {
	fetcher.Fetcher
	mu    sync.Mutex
	calls [][]fetcher.Range
}

func (r *recordingFetcher) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	r.mu.Lock()
	r.calls = append(r.calls, slices.Clone(ranges))
	r.mu.Unlock()
	return r.Fetcher.Fetch(ctx, ranges, fn)
}

func (r *recordingFetcher) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
}

// openLayer opens blob through a recordingFetcher, with a cache.
func openLayer(t testing.TB, blob []byte, opts ...reader.Option) (*reader.Layer, *recordingFetcher) {
	t.Helper()
	f := &recordingFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))}
	opts = append([]reader.Option{reader.WithCache(cache.NewMemory(64 << 20))}, opts...)
	l, err := reader.Open(context.Background(), f, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f.reset()
	return l, f
}

func TestRunFetchesInPriorityOrder(t *testing.T) {
	files := []file{randomFile("a", 300<<10, 1), randomFile("b", 300<<10, 2), randomFile("c", 300<<10, 3)}
	layer, f := openLayer(t, buildLayer(t, files))
	var plan prefetch.Plan
	plan.Add(prefetch.Item{Path: "b", Priority: 2})
	plan.Add(prefetch.Item{Path: "c", Priority: 0})
	plan.Add(prefetch.Item{Path: "a", Priority: 1})
	if err := prefetch.Run(context.Background(), &plan, []*reader.Layer{layer}, prefetch.WithRequests(1)); err != nil {
		t.Fatal(err)
	}
	entry := func(name string) int64 {
		e, err := layer.ContentEntry(name)
		if err != nil {
			t.Fatal(err)
		}
		return e.Chunks[0].FrameOffset
	}
	// One request at a time: the first asks for c alone, the most urgent.
	if len(f.calls) == 0 || len(f.calls[0]) != 1 || f.calls[0][0].Offset != entry("c") {
		t.Fatalf("fetches %v, want the first to ask for c's frame at %d", f.calls, entry("c"))
	}
	f.reset()
	for _, file := range files {
		got, err := layer.ReadFile(file.name)
		if err != nil || !bytes.Equal(got, file.data) {
			t.Fatalf("%s: %d bytes, %v", file.name, len(got), err)
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("reads after Run fetched %v", f.calls)
	}
}

func TestRunAcrossLayersReportsProgress(t *testing.T) {
	lower, _ := openLayer(t, buildLayer(t, []file{randomFile("bin/tool", 100<<10, 1), randomFile("etc/conf", 10<<10, 2)}))
	upper, _ := openLayer(t, buildLayer(t, []file{randomFile("app/main", 50<<10, 3)}))
	var plan prefetch.Plan
	plan.Add(prefetch.Item{Layer: 1, Path: "app/main"})
	plan.Add(prefetch.Item{Layer: 0, Path: "bin/tool", Priority: 1})
	plan.Add(prefetch.Item{Layer: 0, Path: "not/there", Priority: 2}) // skipped
	plan.Add(prefetch.Item{Layer: 5, Path: "no/layer", Priority: 3})  // skipped
	var mu sync.Mutex
	var last prefetch.Progress
	err := prefetch.Run(context.Background(), &plan, []*reader.Layer{lower, upper},
		prefetch.WithProgress(func(p prefetch.Progress) {
			mu.Lock()
			defer mu.Unlock()
			if p.FramesDone < last.FramesDone {
				t.Errorf("progress went back from %+v to %+v", last, p)
			}
			last = p
		}))
	if err != nil {
		t.Fatal(err)
	}
	if last.Frames != 2 || last.FramesDone != 2 || last.BytesDone != last.Bytes || last.Bytes == 0 {
		t.Errorf("final progress %+v, want 2 frames done", last)
	}
}

func TestRunCancelled(t *testing.T) {
	layer, _ := openLayer(t, buildLayer(t, []file{randomFile("a", 10<<10, 1)}))
	var plan prefetch.Plan
	plan.Add(prefetch.Item{Path: "a"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := prefetch.Run(ctx, &plan, []*reader.Layer{layer}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a cancelled context: %v", err)
	}
}

func TestRunNeedsCache(t *testing.T) {
	blob := buildLayer(t, []file{randomFile("a", 10<<10, 1)})
	layer, err := reader.Open(context.Background(), fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob))))
	if err != nil {
		t.Fatal(err)
	}
	defer layer.Close()
	var plan prefetch.Plan
	plan.Add(prefetch.Item{Path: "a"})
	if err := prefetch.Run(context.Background(), &plan, []*reader.Layer{layer}); !errors.Is(err, reader.ErrNoCache) {
		t.Errorf("Run on a layer without cache: %v", err)
	}
}

func TestRecorderProfilesFirstReads(t *testing.T) {
	files := []file{randomFile("a", 1000, 1), randomFile("b", 1000, 2), randomFile("c", 1000, 3)}
	var rec prefetch.Recorder
	layer, _ := openLayer(t, buildLayer(t, files), reader.WithAccessObserver(rec.Observe))
	for _, name := range []string{"c", "a", "c", "b"} {
		if _, err := layer.ReadFile(name); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.Plan(0).Paths(0); !slices.Equal(got, []string{"c", "a", "b"}) {
		t.Errorf("recorded plan %q, want c, a, b", got)
	}
	var trace bytes.Buffer
	if err := prefetch.WriteTrace(&trace, rec.Trace()); err != nil {
		t.Fatal(err)
	}
	parsed, err := prefetch.ParseTrace(&trace)
	if err != nil || len(parsed) != 3 || parsed[0].Path != "c" {
		t.Errorf("recorded trace parsed back as %+v, %v", parsed, err)
	}
}

// TestRecorderProfilesRanges: a file read in part is profiled as the byte
// ranges of the chunks read, adjacent chunks merged, so that a prefetch of
// the profile fetches those chunks only; a file read whole stays whole.
func TestRecorderProfilesRanges(t *testing.T) {
	big, small := randomFile("big", 10000, 1), randomFile("small", 1000, 2)
	var rec prefetch.Recorder
	layer, _ := openLayer(t, buildLayer(t, []file{big, small}, writer.WithChunkSize(1000)),
		reader.WithAccessObserver(rec.Observe))
	f, err := layer.Open("big")
	if err != nil {
		t.Fatal(err)
	}
	ra := f.(io.ReaderAt)
	buf := make([]byte, 1500)
	for _, off := range []int64{8200, 500, 0} { // chunks 8, 0 and 1, 0 again
		if _, err := ra.ReadAt(buf[:min(1500, 10000-off)], off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if _, err := layer.ReadFile("small"); err != nil {
		t.Fatal(err)
	}
	want := []prefetch.Access{
		{Path: "big", Op: prefetch.OpRead, Offset: 0, Length: 2000},
		{Path: "big", Op: prefetch.OpRead, Offset: 8000, Length: 2000},
		{Path: "small", Op: prefetch.OpRead},
	}
	if got := rec.Trace(); !slices.Equal(got, want) {
		t.Errorf("trace %+v, want %+v", got, want)
	}
	plan := rec.Plan(0)
	if got := plan.Paths(0); !slices.Equal(got, []string{"big", "small"}) {
		t.Errorf("plan paths %q", got)
	}
	chunks, err := plan.Chunks(func(_ int, name string) (*toc.Entry, error) { return layer.ContentEntry(name) })
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int64
	for _, c := range chunks {
		if c.Path == "big" {
			offsets = append(offsets, c.Chunk.Offset)
		}
	}
	if !slices.Equal(offsets, []int64{0, 1000, 8000, 9000}) {
		t.Errorf("chunks of big planned: %v", offsets)
	}
}

// slowFetcher models a registry's round trip, so that reads that do not
// share a request cannot share one by arriving together.
type slowFetcher struct{ *recordingFetcher }

func (s slowFetcher) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	time.Sleep(2 * time.Millisecond)
	return s.recordingFetcher.Fetch(ctx, ranges, fn)
}

// TestImageConfigPythonLazyLayer: planning a Python program on a lazy
// layer fetches the sources of each level of imports in one go, not a
// request (or several) per module. The analysis' reads are not reported
// as the workload's accesses, which a recorded profile is made of.
func TestImageConfigPythonLazyLayer(t *testing.T) {
	lib := "usr/lib/python3.11/"
	files := []file{{"usr/bin/python3.11", []byte("not elf")}, {lib + "shared.py", []byte("x = 1\n")}}
	var code strings.Builder
	for i := range 30 {
		name := fmt.Sprintf("m%d", i)
		files = append(files, file{lib + name + ".py", []byte("import shared\n" + strings.Repeat("# a comment\n", 500))},
			randomFile(lib+name+".dat", 100<<10, uint64(i))) // never read: keeps the modules apart
		fmt.Fprintf(&code, "import %s\n", name)
	}
	blob := buildLayer(t, files, writer.WithChunkSize(1000))
	f := &recordingFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)))}
	var accesses atomic.Int64
	layer, err := reader.Open(context.Background(), slowFetcher{f}, reader.WithCache(cache.NewMemory(64<<20)),
		reader.WithAccessObserver(func(reader.Access) { accesses.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	defer layer.Close()
	f.reset()
	plan, _ := prefetch.FromImageConfig(context.Background(), overlay.New(layer), v1.ImageConfig{
		Entrypoint: []string{"/usr/bin/python3.11", "-c", code.String()},
	})
	if !slices.Contains(plan.Paths(0), lib+"m29.py") || !slices.Contains(plan.Paths(0), lib+"shared.py") {
		t.Fatalf("plan %q lacks the modules", plan.Paths(0))
	}
	if n := len(f.calls); n > 4 {
		t.Errorf("planning made %d requests for 2 levels of imports", n)
	}
	if n := accesses.Load(); n != 0 {
		t.Errorf("the analysis' reads were reported as %d accesses of the workload", n)
	}
}
