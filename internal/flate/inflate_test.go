package flate

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"testing/iotest"
)

// sample returns n bytes that compress like real files: text, runs,
// and incompressible stretches.
func sample(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	words := []string{"func ", "return ", "if err != nil {", "\n\t", "}\n", "package ", "lazylayer", "0123456789"}
	var b bytes.Buffer
	for b.Len() < n {
		switch r.IntN(10) {
		case 0:
			b.Write(bytes.Repeat([]byte{byte(r.IntN(256))}, r.IntN(3000)))
		case 1:
			junk := make([]byte, r.IntN(5000))
			for i := range junk {
				junk[i] = byte(r.Uint32())
			}
			b.Write(junk)
		default:
			for range r.IntN(200) {
				b.WriteString(words[r.IntN(len(words))])
			}
		}
	}
	return b.Bytes()[:n]
}

func gzipped(t testing.TB, level int, h gzip.Header, parts ...[]byte) []byte {
	var buf bytes.Buffer
	for _, p := range parts {
		w, err := gzip.NewWriterLevel(&buf, level)
		if err != nil {
			t.Fatal(err)
		}
		w.Header = h
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// inflate decodes gz with a Reader, reading the stream through wrap.
func inflate(gz []byte, wrap func(io.Reader) io.Reader) ([]byte, error) {
	var out bytes.Buffer
	_, err := NewReader(wrap(bytes.NewReader(gz))).WriteTo(&out)
	return out.Bytes(), err
}

func same(r io.Reader) io.Reader { return r }

func TestReaderMatchesGzip(t *testing.T) {
	data := sample(3<<20, 1)
	header := gzip.Header{Name: "layer.tar", Comment: "a comment", Extra: []byte("extra field")}
	cases := map[string][]byte{
		"empty":        gzipped(t, 6, gzip.Header{}, nil),
		"stored":       gzipped(t, gzip.NoCompression, gzip.Header{}, data),
		"huffman only": gzipped(t, gzip.HuffmanOnly, gzip.Header{}, data[:1<<20]),
		"level 1":      gzipped(t, 1, gzip.Header{}, data),
		"level 9":      gzipped(t, 9, header, data),
		"members":      gzipped(t, 6, header, data[:100], nil, data[100:1<<20], data[1<<20:]),
		"zeros":        gzipped(t, 9, gzip.Header{}, make([]byte, 5<<20)),
	}
	reads := map[string]func(io.Reader) io.Reader{"whole": same, "bytewise": iotest.OneByteReader, "halves": iotest.HalfReader}
	for name, gz := range cases {
		want, err := io.ReadAll(must(gzip.NewReader(bytes.NewReader(gz))))
		if err != nil {
			t.Fatal(err)
		}
		for rname, wrap := range reads {
			if rname == "bytewise" && len(gz) > 1<<20 {
				continue
			}
			got, err := inflate(gz, wrap)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s, %s reads: got %d bytes, %v; want %d bytes", name, rname, len(got), err, len(want))
			}
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestReadSmall checks Read with buffers smaller than its output.
func TestReadSmall(t *testing.T) {
	data := sample(1<<20, 2)
	got, err := io.ReadAll(iotest.OneByteReader(NewReader(bytes.NewReader(gzipped(t, 6, gzip.Header{}, data)))))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
}

// shiftBits returns b from bit skip on, as whole bytes.
func shiftBits(b []byte, skip uint8) []byte {
	if skip == 0 {
		return b
	}
	out := make([]byte, len(b))
	for i := range b {
		v := b[i] >> skip
		if i+1 < len(b) {
			v |= b[i+1] << (8 - skip)
		}
		out[i] = v
	}
	return out
}

// TestBoundaries checks that decoding resumes at every boundary from the
// boundary's bit position and window alone, and that OnInput saw the
// stream up to it.
func TestBoundaries(t *testing.T) {
	parts := [][]byte{sample(700<<10, 3), sample(20<<10, 4), sample(900<<10, 5)}
	for _, level := range []int{0, 1, 6, 9} {
		gz := gzipped(t, level, gzip.Header{Name: "x"}, parts...)
		want := bytes.Join(parts, nil)
		// Where each member's output ends, to know where resuming stops.
		memberEnds := []int64{}
		var end int64
		for _, p := range parts {
			end += int64(len(p))
			memberEnds = append(memberEnds, end)
		}
		var seen bytes.Buffer
		var points []Boundary
		z := NewReader(bytes.NewReader(gz))
		z.OnInput = func(p []byte) { seen.Write(p) }
		z.OnBoundary = func(b *Boundary) error {
			wantSeen := b.In
			if b.Bits != 0 {
				wantSeen--
			}
			if int64(seen.Len()) != wantSeen || b.Bits != 0 && b.Partial != gz[b.In-1] {
				t.Fatalf("level %d: at boundary %+v OnInput has seen %d bytes", level, *b, seen.Len())
			}
			p := *b
			p.Window = bytes.Clone(b.Window)
			points = append(points, p)
			return nil
		}
		got, err := io.ReadAll(z)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("level %d: %v", level, err)
		}
		if !bytes.Equal(seen.Bytes(), gz) {
			t.Fatalf("level %d: OnInput saw %d bytes of %d", level, seen.Len(), len(gz))
		}
		if len(points) < 3 {
			t.Fatalf("level %d: only %d boundaries", level, len(points))
		}
		for _, p := range points {
			win := make([]byte, WindowSize)
			copy(win[max(0, WindowSize-p.Out):], want[max(0, p.Out-WindowSize):p.Out])
			if !bytes.Equal(p.Window, win) {
				t.Fatalf("level %d: boundary %+v: window differs", level, p.In)
			}
			stop := int64(0)
			for _, e := range memberEnds {
				if e > p.Out || (e == p.Out && stop == 0) {
					stop = e
					break
				}
			}
			start := p.In
			if p.Bits != 0 {
				start--
			}
			fr := flate.NewReaderDict(bytes.NewReader(shiftBits(gz[start:], (8-p.Bits)%8)), p.Window)
			rest := make([]byte, stop-p.Out)
			if _, err := io.ReadFull(fr, rest); err != nil || !bytes.Equal(rest, want[p.Out:stop]) {
				t.Fatalf("level %d: resuming at %+v: %v", level, p.In, err)
			}
			// Resume decodes to the stream's end, across members, and
			// reports the boundaries after p relative to it.
			var after []Boundary
			r := NewReader(nil)
			r.OnBoundary = func(b *Boundary) error {
				after = append(after, Boundary{In: b.In + start, Bits: b.Bits, Out: b.Out + p.Out})
				return nil
			}
			r.Resume(bytes.NewReader(gz[start:]), p.Bits, p.Window)
			if rest, err := io.ReadAll(r); err != nil || !bytes.Equal(rest, want[p.Out:]) {
				t.Fatalf("level %d: Resume at %+v: %v", level, p.In, err)
			}
			for k, b := range after {
				if q := points[len(points)-len(after)+k]; q.In != b.In || q.Bits != b.Bits || q.Out != b.Out {
					t.Fatalf("level %d: Resume at %d reports boundary %+v, want %+v", level, p.In, b, q)
				}
			}
		}
	}
}

func TestCorrupt(t *testing.T) {
	good := gzipped(t, 6, gzip.Header{}, sample(200<<10, 6))
	flip := bytes.Clone(good)
	flip[len(flip)-6] ^= 1 // the CRC-32
	withTrailing := append(bytes.Clone(good), 0, 0)
	for name, gz := range map[string][]byte{
		"empty":      nil,
		"truncated":  good[:len(good)/2],
		"no trailer": good[:len(good)-8],
		"bad crc":    flip,
		"trailing":   withTrailing,
		"not gzip":   []byte("plain text, not gzip at all"),
	} {
		_, err := inflate(gz, same)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

// TestSourceError checks that an error of the source reaches Read.
func TestSourceError(t *testing.T) {
	gz := gzipped(t, 6, gzip.Header{}, sample(500<<10, 7))
	boom := errors.New("boom")
	_, err := inflate(gz, func(r io.Reader) io.Reader { return io.MultiReader(io.LimitReader(r, 1000), iotest.ErrReader(boom)) })
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("hello hello hello hello"), uint8(6), uint8(1))
	f.Add(sample(4<<10, 8), uint8(1), uint8(2))
	f.Add([]byte{}, uint8(0), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, level, members uint8) {
		parts := make([][]byte, 1+int(members%3))
		for i := range parts {
			parts[i] = data[len(data)*i/len(parts) : len(data)*(i+1)/len(parts)]
		}
		gz := gzipped(t, int(level%11)-1, gzip.Header{}, parts...)
		if got, err := inflate(gz, iotest.HalfReader); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip: %v", err)
		}
		// data itself, as a gzip stream: the same output or an error as
		// compress/gzip, and never a panic;
		// and data after a gzip header, as a deflate stream.
		for _, gz := range [][]byte{data, append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, data...)} {
			var want []byte
			gr, wantErr := gzip.NewReader(bytes.NewReader(gz))
			if wantErr == nil {
				want, wantErr = io.ReadAll(gr)
			}
			got, err := inflate(gz, same)
			if (err == nil) != (wantErr == nil) || err == nil && !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, %v; compress/gzip %d bytes, %v", len(got), err, len(want), wantErr)
			}
		}
	})
}

// goroot returns a tar-like concatenation of GOROOT's src, for
// benchmarks.
func goroot(tb testing.TB, limit int) []byte {
	var b bytes.Buffer
	filepath.WalkDir(filepath.Join(runtime.GOROOT(), "src"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || b.Len() > limit {
			return nil
		}
		data, err := os.ReadFile(p)
		if err == nil {
			b.Write(data)
		}
		return nil
	})
	return b.Bytes()
}

func BenchmarkInflate(b *testing.B) {
	data := goroot(b, 64<<20)
	gz := gzipped(b, 6, gzip.Header{}, data)
	b.Run("flate", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := NewReader(bytes.NewReader(gz)).WriteTo(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("compress/gzip", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			r, _ := gzip.NewReader(bytes.NewReader(gz))
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestReset checks that a Reader reset onto a new stream decodes it as a
// new Reader would, its windows starting from zeros again.
func TestReset(t *testing.T) {
	first, second := sample(1500<<10, 6), sample(200<<10, 7)
	z := NewReader(bytes.NewReader(gzipped(t, 6, gzip.Header{}, first)))
	if got, err := io.ReadAll(z); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("first stream: %d bytes, %v", len(got), err)
	}
	var windows int
	z.OnBoundary = func(b *Boundary) error {
		if b.Out == 0 && !bytes.Equal(b.Window, make([]byte, WindowSize)) {
			t.Errorf("window at output 0 is not zeros after Reset")
		}
		windows++
		return nil
	}
	z.Reset(bytes.NewReader(gzipped(t, 6, gzip.Header{}, second)))
	if got, err := io.ReadAll(z); err != nil || !bytes.Equal(got, second) {
		t.Fatalf("second stream: %d bytes, %v", len(got), err)
	}
	if windows == 0 {
		t.Error("OnBoundary set before Reset was not called")
	}
}
