package writer

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/klauspost/compress/zstd"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

func unzstd(t testing.TB, blob []byte) []byte {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("zstd-decompressing blob: %v", err)
	}
	return out
}

// decodeZstdChunked reads a blob's TOC back as a reader would, checks the
// tar-split against it, and returns both. The returned footer locates the
// tar-split, which the 48-byte footer Build writes does not: it is found
// after the TOC, and its uncompressed length measured.
func decodeZstdChunked(t testing.TB, blob []byte) (*toc.TOC, toc.Footer) {
	t.Helper()
	f, err := zstdchunked.ParseFooter(blob[len(blob)-toc.MaxFooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != zstdchunked.LegacyFooterSize {
		t.Fatalf("%d-byte footer, want the %d-byte one every footer reader accepts", f.Size, zstdchunked.LegacyFooterSize)
	}
	f = zstdchunked.LocateTarSplit(f, int64(len(blob)))
	f.TarSplitUncompressedLength = int64(len(unzstd(t, blob[f.TarSplitOffset:f.TarSplitOffset+f.TarSplitLength])))
	if err := zstdchunked.CheckFooter(f, int64(len(blob))); err != nil {
		t.Fatal(err)
	}
	got, tarSplitDigest, err := zstdchunked.Decode(blob[f.TOCOffset:f.TOCOffset+f.TOCLength], f)
	if err != nil {
		t.Fatalf("decoding TOC: %v", err)
	}
	r, err := zstdchunked.NewTarSplitReader(blob[f.TarSplitOffset:f.TarSplitOffset+f.TarSplitLength], tarSplitDigest)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := zstdchunked.CheckTarSplit(r, got); err != nil {
		t.Fatalf("tar-split disagrees with the TOC: %v", err)
	}
	return got, f
}

// chunkedTar returns a tar of files whose contents exercise the chunker: random data spanning many chunks, data
// with long zero runs, a file of zeros only, and sub-second times.
func chunkedTar(t testing.TB) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 600<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	holes := append(append(append([]byte(nil), random[:5000]...), make([]byte, 300<<10)...), random[:70000]...)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	files := []struct {
		name string
		data []byte
	}{
		{"./random", random},
		{"./holes", holes},
		{"./zeros", make([]byte, 100<<10)},
		{"./small", []byte("hello\n")},
		{"./empty", nil},
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX})
	for _, f := range files {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: mtime, Format: tar.FormatPAX})
		tw.Write(f.data)
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: "./link", Linkname: "./small", ModTime: mtime})
	tw.Close()
	// Some tar writers pad the archive to a 10 KiB record.
	b.Write(make([]byte, 4096))
	return b.Bytes()
}

func TestBuildZstdChunkedKeepsTheTar(t *testing.T) {
	for name, input := range map[string][]byte{"kinds": kindsTar(t), "chunked": chunkedTar(t)} {
		t.Run(name, func(t *testing.T) {
			blob, res := build(t, input, WithFormat(toc.FormatZstdChunked))
			if got := unzstd(t, blob); !bytes.Equal(got, input) {
				t.Fatalf("blob decompresses to %d bytes that differ from the %d-byte input", len(got), len(input))
			}
			if want := digest.FromBytes(input); res.DiffID != want || res.UncompressedSize != int64(len(input)) {
				t.Errorf("DiffID %s (%d bytes), want the input's %s (%d bytes)", res.DiffID, res.UncompressedSize, want, len(input))
			}
			if res.Digest != digest.FromBytes(blob) || res.Size != int64(len(blob)) {
				t.Errorf("Result names blob %s/%d, wrote %s/%d", res.Digest, res.Size, digest.FromBytes(blob), len(blob))
			}
			got, f := decodeZstdChunked(t, blob)
			if got.Digest != res.TOCDigest {
				t.Errorf("TOC digest %s, Result says %s", got.Digest, res.TOCDigest)
			}
			tocDigest, af, err := zstdchunked.ParseAnnotations(res.Annotations)
			if err != nil {
				t.Fatal(err)
			}
			af.Size = f.Size
			if tocDigest != res.TOCDigest || af != f {
				t.Errorf("annotations %v disagree with the footer %+v", res.Annotations, f)
			}
			// Every reader's spelling is there.
			a := res.Annotations
			if a[zstdchunked.LegacyAnnotationManifestChecksum] != a[zstdchunked.AnnotationManifestChecksum] ||
				a[zstdchunked.LegacyAnnotationManifestPosition] != a[zstdchunked.AnnotationManifestPosition] ||
				a[zstdchunked.AnnotationTarSplitChecksum] != res.TOC().TarSplitDigest.String() || res.TOC().TarSplitDigest == "" {
				t.Errorf("annotations %v lack the first spellings or the tar-split checksum %s", a, res.TOC().TarSplitDigest)
			}
			checkChunkFrames(t, blob, got, input)
		})
	}
}

// checkChunkFrames decompresses every chunk's frame alone and compares it
// with the file's bytes in the input.
func checkChunkFrames(t *testing.T, blob []byte, tc *toc.TOC, input []byte) {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(input))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		data, _ := io.ReadAll(tr)
		files[cleanName(h.Name)] = data
	}
	zr, _ := zstd.NewReader(nil)
	defer zr.Close()
	for _, e := range tc.Entries {
		for i, c := range e.Chunks {
			frame, err := zr.DecodeAll(blob[c.FrameOffset:c.FrameEnd], nil)
			if err != nil {
				t.Fatalf("%s chunk %d: %v", e.Name, i, err)
			}
			// The last chunk's frame goes on with the headers that follow.
			if want := files[e.Name][c.Offset : c.Offset+c.Size]; !bytes.HasPrefix(frame, want) {
				t.Fatalf("%s chunk %d: frame holds other bytes", e.Name, i)
			}
			if c.Zeros && bytes.ContainsFunc(frame[:c.Size], func(r rune) bool { return r != 0 }) {
				t.Fatalf("%s chunk %d: zeros chunk holds data", e.Name, i)
			}
		}
	}
}

func TestBuildZstdChunkedChunks(t *testing.T) {
	blob, res := build(t, chunkedTar(t), WithFormat(toc.FormatZstdChunked))
	got, _ := decodeZstdChunked(t, blob)
	byName := map[string]*toc.Entry{}
	for _, e := range got.Entries {
		byName[e.Name] = e
	}
	if n := len(byName["random"].Chunks); n != 1 {
		t.Errorf("600 KiB of random data in %d chunks, want one below the %d-byte minimum", n, DefaultContentChunkMin)
	}
	var zeros []toc.Chunk
	for _, c := range byName["holes"].Chunks {
		if c.Zeros {
			zeros = append(zeros, c)
		}
	}
	if len(zeros) != 1 || zeros[0].Offset != 5000 || zeros[0].Size != 300<<10 {
		t.Errorf("holes: zeros chunks %+v, want one of 300 KiB at 5000", zeros)
	}
	if c := byName["zeros"].Chunks; len(c) != 1 || c[0].Zeros {
		t.Errorf("a file of zeros only: chunks %+v, want one ordinary chunk", c)
	}
	if e := byName["small"]; e.ModTime.Nanosecond() != 123456789 {
		t.Errorf("modtime %v lost its nanoseconds", e.ModTime)
	}
	if e := byName["link"]; e.LinkName != "small" {
		t.Errorf("hardlink target %q, want the cleaned %q", e.LinkName, "small")
	}
	for i, e := range res.TOC().Entries {
		if g := got.Entries[i]; g.Name != e.Name || len(g.Chunks) != len(e.Chunks) || g.Digest != e.Digest {
			t.Errorf("Result.TOC entry %d is %q, the blob's is %q", i, e.Name, g.Name)
		}
	}
}

// TestBuildZstdChunkedContentChunkMin checks that chunks end at content
// boundaries no sooner than the minimum: containers/storage's chunks at
// zero, chunks of at least the minimum (but the last) above it.
func TestBuildZstdChunkedContentChunkMin(t *testing.T) {
	in := chunkedTar(t)
	for _, tc := range []struct {
		min        int64
		minN, maxN int // chunks of the 600 KiB random file
		smallest   int64
	}{
		{0, 3, 40, minCDCChunk},
		{200 << 10, 2, 3, 200 << 10},
	} {
		blob, _ := build(t, in, WithFormat(toc.FormatZstdChunked), WithContentChunkMin(tc.min))
		got, _ := decodeZstdChunked(t, blob)
		for _, e := range got.Entries {
			if e.Name != "random" {
				continue
			}
			if n := len(e.Chunks); n < tc.minN || n > tc.maxN {
				t.Errorf("minimum %d: 600 KiB of random data in %d chunks, want %d to %d", tc.min, n, tc.minN, tc.maxN)
			}
			for i, c := range e.Chunks[:len(e.Chunks)-1] {
				if c.Size < tc.smallest {
					t.Errorf("minimum %d: chunk %d of %d bytes", tc.min, i, c.Size)
				}
			}
		}
		if !bytes.Equal(unzstd(t, blob), in) {
			t.Errorf("minimum %d: the blob does not decompress to the input tar", tc.min)
		}
	}
}

func TestBuildZstdChunkedFixedChunks(t *testing.T) {
	in := chunkedTar(t)
	blob, _ := build(t, in, WithFormat(toc.FormatZstdChunked), WithFixedChunks(), WithChunkSize(100<<10))
	got, _ := decodeZstdChunked(t, blob)
	for _, e := range got.Entries {
		for i, c := range e.Chunks {
			if c.Zeros || (i < len(e.Chunks)-1 && c.Size != 100<<10) {
				t.Errorf("%s: chunk %d of %d bytes (zeros %v), want 100 KiB ones", e.Name, i, c.Size, c.Zeros)
			}
		}
	}
	if !bytes.Equal(unzstd(t, blob), in) {
		t.Error("the blob does not decompress to the input tar")
	}
}

func TestBuildZstdChunkedIsDeterministic(t *testing.T) {
	input := chunkedTar(t)
	want, _ := build(t, input, WithFormat(toc.FormatZstdChunked), WithConcurrency(1))
	for _, n := range []int{2, 5} {
		if got, _ := build(t, input, WithFormat(toc.FormatZstdChunked), WithConcurrency(n)); !bytes.Equal(got, want) {
			t.Errorf("concurrency %d changed the blob", n)
		}
	}
	// A small chunk size caps content-defined chunks.
	blob, _ := build(t, input, WithFormat(toc.FormatZstdChunked), WithChunkSize(8<<10))
	got, _ := decodeZstdChunked(t, blob)
	for _, e := range got.Entries {
		for _, c := range e.Chunks {
			if c.Size > 8<<10 {
				t.Fatalf("%s: %d-byte chunk exceeds the 8 KiB chunk size", e.Name, c.Size)
			}
		}
	}
	if out := unzstd(t, blob); !bytes.Equal(out, input) {
		t.Error("small chunks: blob does not decompress to the input")
	}
}

func TestBuildZstdChunkedRejects(t *testing.T) {
	input := kindsTar(t)
	for name, opts := range map[string][]Option{
		"prioritized": {WithPrioritizedFiles([]string{"a"})},
		"min chunk":   {WithMinChunkSize(1 << 20)},
		"level":       {WithCompressionLevel(23)},
	} {
		_, err := Build(t.Context(), io.Discard, bytes.NewReader(input), append(opts, WithFormat(toc.FormatZstdChunked))...)
		if !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: error %v, want ErrInvalidOption", name, err)
		}
	}
	var global bytes.Buffer
	tw := tar.NewWriter(&global)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "g", PAXRecords: map[string]string{"comment": "x"}})
	tw.Close()
	if _, err := Build(t.Context(), io.Discard, &global, WithFormat(toc.FormatZstdChunked)); !errors.Is(err, ErrUnsupportedEntry) {
		t.Errorf("global header: error %v, want ErrUnsupportedEntry", err)
	}
}

func TestChunkerBoundariesAreContentDefined(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 2<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	cut := func(b []byte) []int {
		c := newChunker(DefaultChunkSize, 0, false)
		c.reset(bytes.NewReader(b), int64(len(b)))
		var ends []int
		end := 0
		for {
			chunk, _, err := c.next()
			if err == io.EOF {
				return ends
			}
			if err != nil {
				t.Fatal(err)
			}
			end += len(chunk)
			ends = append(ends, end)
		}
	}
	a := cut(data)
	// Inserting bytes near the start shifts, but keeps, later boundaries.
	b := cut(append([]byte("inserted"), data...))
	shifted := map[int]bool{}
	for _, e := range b {
		shifted[e-len("inserted")] = true
	}
	kept := 0
	for _, e := range a {
		if shifted[e] {
			kept++
		}
	}
	if kept < len(a)-2 {
		t.Errorf("%d of %d boundaries survive an insertion at the start", kept, len(a))
	}
	if avg := len(data) / len(a); avg < 32<<10 || avg > 128<<10 {
		t.Errorf("average chunk %d bytes, want about 64 KiB", avg)
	}
}

// rollSum is bup's rolling checksum over the last rollWindow bytes, kept
// in a window of its own: the plain form of what chunker computes.
type rollSum struct {
	s1, s2 uint32
	window [rollWindow]byte
	pos    uint // index of the oldest byte in window, below rollWindow
}

func (r *rollSum) reset() { *r = rollSum{s1: rollInitS1, s2: rollInitS2} }

func (r *rollSum) roll(b byte) {
	drop := uint32(r.window[r.pos])
	r.window[r.pos] = b
	r.pos = (r.pos + 1) % rollWindow
	r.s1 += uint32(b) - drop
	r.s2 += r.s1 - rollWindow*(drop+rollOffset)
}

// rollZeros rolls n zero bytes. Once the window holds only zeros the sums
// no longer change, so at most one window's worth needs rolling.
func (r *rollSum) rollZeros(n int) {
	for range min(n, rollWindow) {
		r.roll(0)
	}
}

func (r *rollSum) atSplit() bool { return r.s2&splitMask == splitMask }

// naiveCuts is the chunking rule written plainly, one byte at a time.
func naiveCuts(data []byte, maxSize, minData int) (ends []int, zeros []bool) {
	var sum rollSum
	sum.reset()
	start := 0
	for start < len(data) {
		w := data[start:min(len(data), start+maxSize+zeroRunMin)]
		limit := min(len(w), maxSize)
		n, z := limit, false
		for i := 0; i < limit; i++ {
			// A zero run is judged where it starts (a shorter tail of a
			// short run is no longer).
			if w[i] == 0 && zeroRun(w[i:], zeroRunMin) >= zeroRunMin && (i == 0 || w[i-1] != 0) {
				if i > 0 {
					n = i
				} else {
					n, z = zeroRun(w, limit), true
					sum.rollZeros(n)
				}
				break
			}
			sum.roll(w[i])
			if i+1 >= max(minCDCChunk, minData) && sum.atSplit() {
				n = i + 1
				break
			}
		}
		start += n
		ends = append(ends, start)
		zeros = append(zeros, z)
	}
	return ends, zeros
}

func TestChunkerMatchesNaiveRule(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var data []byte
	for len(data) < 3<<20 {
		switch rng.IntN(4) {
		case 0:
			data = append(data, make([]byte, rng.IntN(3000))...) // zero runs around the threshold
		default:
			n := rng.IntN(200 << 10)
			for range n {
				if rng.IntN(50) == 0 {
					data = append(data, 0)
				} else {
					data = append(data, byte(rng.Uint32()))
				}
			}
		}
	}
	for _, size := range []struct{ max, min int }{
		{DefaultChunkSize, 0}, {8 << 10, 0}, {1500, 0},
		{DefaultChunkSize, 100 << 10}, {DefaultChunkSize, DefaultContentChunkMin}, {300 << 10, 200 << 10},
	} {
		checkNaiveRule(t, data, size.max, size.min)
	}

	// Boundaries every few KiB and zero runs just over the threshold,
	// with chunk sizes that move the buffer every few chunks.
	dense := boundaryPattern(rng)
	data = data[:0]
	for len(data) < 2<<20 {
		switch rng.IntN(3) {
		case 0:
			data = append(data, make([]byte, zeroRunMin+rng.IntN(zeroRunMin))...)
		case 1:
			for range rng.IntN(64) {
				data = append(data, dense...)
			}
		default:
			for range rng.IntN(4000) {
				data = append(data, byte(rng.Uint32()|1))
			}
		}
	}
	for _, max := range []int{3000, 5000, 7919} {
		checkNaiveRule(t, data, max, 0)
	}
}

// boundaryPattern returns 64 bytes without zeros that, repeated, put a
// boundary of the rolling sum in every repetition.
func boundaryPattern(rng *rand.Rand) []byte {
	pattern := make([]byte, rollWindow)
	for {
		for i := range pattern {
			pattern[i] = byte(rng.Uint32() | 0x80)
		}
		var sum rollSum
		sum.reset()
		for i := range 3 * rollWindow {
			sum.roll(pattern[i%rollWindow])
			if i >= 2*rollWindow && sum.atSplit() {
				return pattern
			}
		}
	}
}

// checkNaiveRule checks that the chunker cuts data where naiveCuts does.
func checkNaiveRule(t *testing.T, data []byte, max, minData int) {
	t.Helper()
	wantEnds, wantZeros := naiveCuts(data, max, minData)
	c := newChunker(max, minData, false)
	c.reset(bytes.NewReader(data), int64(len(data)))
	end := 0
	for i := 0; ; i++ {
		chunk, zeros, err := c.next()
		if err == io.EOF {
			if i != len(wantEnds) {
				t.Fatalf("max %d, min %d: %d chunks, want %d", max, minData, i, len(wantEnds))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		end += len(chunk)
		if i >= len(wantEnds) || end != wantEnds[i] || zeros != wantZeros[i] {
			t.Fatalf("max %d, min %d: chunk %d ends at %d (zeros %v), want %v", max, minData, i, end, zeros, wantEnds[i:min(i+1, len(wantEnds))])
		}
	}
}

// BenchmarkChunker measures content-defined chunking alone, on random
// data, with containers/storage's chunks (min-0) and with the default
// minimum; MB/s is input bytes.
func BenchmarkChunker(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, least := range []int{0, DefaultContentChunkMin} {
		b.Run(fmt.Sprintf("min-%d", least), func(b *testing.B) {
			c := newChunker(DefaultChunkSize, least, false)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				c.reset(bytes.NewReader(data), int64(len(data)))
				for {
					if _, _, err := c.next(); err != nil {
						break
					}
				}
			}
		})
	}
}
