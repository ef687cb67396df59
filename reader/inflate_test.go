package reader

import (
	"bytes"
	stdgzip "compress/gzip"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/lazylayer/lazylayer/toc"
)

// inflateAll decodes member with an inflater, stopping at the given
// output lengths on the way, and reports what it decoded, up to max bytes.
func inflateAll(member []byte, max int, stops ...int) ([]byte, error) {
	var z inflater
	out := make([]byte, max)
	if err := z.reset(member, out); err != nil {
		return nil, err
	}
	for _, n := range append(stops, max) {
		if err := z.decode(n); err != nil {
			return z.out, err
		}
	}
	return z.out, nil
}

// gunzip decodes member with klauspost/compress, the reference.
func gunzip(member []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(member))
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	return io.ReadAll(zr)
}

func inflateCorpus(t testing.TB) [][]byte {
	var corpus [][]byte
	corpus = append(corpus, nil, []byte("a"), bytes.Repeat([]byte("ab"), 100000), pseudoRandom(300000, 7))
	for _, name := range []string{"inflate.go", "chunks.go", "file.go"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		corpus = append(corpus, data)
	}
	// A binary with long matches and literals of all kinds.
	if exe, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "bin", "gofmt")); err == nil {
		corpus = append(corpus, exe[:min(len(exe), 1<<20)])
	}
	return corpus
}

func gzipWith(t testing.TB, data []byte, level int, std bool) []byte {
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	if std {
		w, err = stdgzip.NewWriterLevel(&buf, level)
	} else {
		w, err = gzip.NewWriterLevel(&buf, level)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return buf.Bytes()
}

func TestInflateMatchesGzip(t *testing.T) {
	for i, data := range inflateCorpus(t) {
		for _, level := range []int{-2, 0, 1, 5, 9} {
			for _, std := range []bool{false, true} {
				member := gzipWith(t, data, level, std)
				got, err := inflateAll(member, len(data), len(data)/3, len(data)/3+1, len(data)/2)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("input %d, level %d, std %v: %d bytes, %v; want %d bytes", i, level, std, len(got), err, len(data))
				}
				// Asking for more than the member holds fails.
				if _, err := inflateAll(member, len(data)+1); err == nil {
					t.Errorf("input %d, level %d, std %v: no error past the end", i, level, std)
				}
			}
		}
	}
}

func TestInflateHeaderFields(t *testing.T) {
	data := []byte("hello, hello, hello")
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Name, w.Comment, w.Extra = "name", "comment", []byte{1, 2, 3}
	w.Write(data)
	w.Close()
	got, err := inflateAll(buf.Bytes(), len(data))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("decoded %q, %v; want %q", got, err, data)
	}
	for n := range 20 {
		if _, err := inflateAll(buf.Bytes()[:n], len(data)); err == nil {
			t.Errorf("member cut to %d bytes: no error", n)
		}
	}
}

// FuzzInflate checks the inflater against klauspost/compress on damaged
// and hand-made members: it must never panic, and whatever it decodes
// must be what gzip decodes.
func FuzzInflate(f *testing.F) {
	for _, data := range inflateCorpus(f)[:4] {
		f.Add(gzipWith(f, data[:min(len(data), 4096)], 6, false))
	}
	f.Fuzz(func(t *testing.T, member []byte) {
		want, wantErr := gunzip(member)
		got, err := inflateAll(member, len(want), len(want)/2)
		if err == nil && wantErr == nil && !bytes.Equal(got, want) {
			t.Fatalf("inflater decoded %q, gzip %q", got, want)
		}
		if err == nil && wantErr != nil {
			// The inflater need not look at the trailer, nor past the
			// bytes it was asked for; the prefix must still agree.
			if !bytes.HasPrefix(want, got) {
				t.Fatalf("inflater decoded %q, gzip %q before %v", got, want, wantErr)
			}
		}
		// Any length of output may be asked for.
		inflateAll(member, 2*len(want)+10, 1)
	})
}

func TestInflateSpansReadsFrames(t *testing.T) {
	for _, share := range []bool{false, true} {
		b := &blobBuilder{share: share}
		contents := [][]byte{pseudoRandom(5000, 1), bytes.Repeat([]byte("text "), 3000)}
		for i, c := range contents {
			b.add(&toc.Entry{Name: string(rune('a' + i))}, c)
		}
		blob, index := b.finish()
		l, _ := testLayer(t, blob, index)
		for i, e := range index.Entries {
			c := e.Chunks[0]
			plan := []span{{c.InnerOffset, c.Size, chunkDigest(e, 0)}}
			res := make(frameResult)
			if !l.inflateSpans(blob[c.FrameOffset:c.FrameEnd], plan, res) {
				t.Fatalf("share=%v: entry %d: inflater failed", share, i)
			}
			if r := res[plan[0]]; r.err != nil || !bytes.Equal(r.data, contents[i]) {
				t.Errorf("share=%v: entry %d: %d bytes, %v", share, i, len(r.data), r.err)
			}
			// A chunk whose digest does not match is left to the
			// klauspost/compress path, which reports it.
			plan[0].digest = chunkDigest(index.Entries[1-i], 0)
			if l.inflateSpans(blob[c.FrameOffset:c.FrameEnd], plan, make(frameResult)) {
				t.Errorf("share=%v: entry %d: mismatch not left to gzip", share, i)
			}
		}
	}
}

// BenchmarkInflate compares the inflater with klauspost/compress on a Go
// binary, the bulk of a Go toolchain layer.
func BenchmarkInflate(b *testing.B) {
	corpus := inflateCorpus(b)
	data := corpus[len(corpus)-1]
	member := gzipWith(b, data, 6, true)
	out := make([]byte, len(data))
	b.Run("inflater", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		var z inflater
		for b.Loop() {
			if err := z.reset(member, out); err != nil {
				b.Fatal(err)
			}
			if err := z.decode(len(out)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("klauspost", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		zr, _ := gzip.NewReader(bytes.NewReader(member))
		for b.Loop() {
			zr.Reset(bytes.NewReader(member))
			if _, err := io.ReadFull(zr, out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
