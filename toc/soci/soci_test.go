package soci

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/opencontainers/go-digest"
)

const testSpan = 64 << 10

func kindsTar(t testing.TB) []byte {
	t.Helper()
	b, err := tartest.WriteTar(tartest.SmallKinds())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// gzipMembers compresses data as one gzip member per part boundary.
func gzipMembers(t testing.TB, level int, data []byte, cuts ...int) []byte {
	var buf bytes.Buffer
	cuts = append(cuts, len(data))
	prev := 0
	for _, c := range cuts {
		w, _ := gzip.NewWriterLevel(&buf, level)
		w.Name = "layer.tar"
		if _, err := w.Write(data[prev:c]); err != nil {
			t.Fatal(err)
		}
		w.Close()
		prev = c
	}
	return buf.Bytes()
}

func index(t testing.TB, layer []byte, c Compression, opts ...Option) *Ztoc {
	t.Helper()
	z, err := Index(context.Background(), bytes.NewReader(layer), c, append([]Option{WithSpanSize(testSpan)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// shiftBits returns b from bit skip on, as whole bytes.
func shiftBits(b []byte, skip uint8) []byte {
	if skip == 0 {
		return b
	}
	out := make([]byte, len(b))
	for i := range b {
		out[i] = b[i] >> skip
		if i+1 < len(b) {
			out[i] |= b[i+1] << (8 - skip)
		}
	}
	return out
}

func TestIndexGzip(t *testing.T) {
	data := kindsTar(t)
	layer := gzipMembers(t, 6, data, len(data)/3)
	z := index(t, layer, Gzip)
	enc, err := Encode(z)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := Encode(dec); !bytes.Equal(again, enc) {
		t.Fatal("decoding and encoding again changes the zTOC")
	}
	if dec.CompressedArchiveSize != int64(len(layer)) || dec.Compression != Gzip {
		t.Fatalf("sizes %d, compression %d", dec.CompressedArchiveSize, dec.Compression)
	}
	checkFiles(t, dec, data)
	cp, err := DecodeCheckpoints(dec.Checkpoints)
	if err != nil {
		t.Fatal(err)
	}
	if len(cp.Points) < 10 || cp.SpanSize != testSpan {
		t.Fatalf("%d checkpoints, span size %d", len(cp.Points), cp.SpanSize)
	}
	for i, p := range cp.Points {
		end := int64(len(layer))
		if i+1 < len(cp.Points) {
			end = cp.Points[i+1].In
		}
		if got := digest.FromBytes(layer[p.CompressedStart():end]); got != dec.SpanDigests[i] {
			t.Fatalf("span %d: digest %s, want %s", i, dec.SpanDigests[i], got)
		}
		// Decoding resumes at the checkpoint, up to a member's end.
		fr := flate.NewReaderDict(bytes.NewReader(shiftBits(layer[p.CompressedStart():], (8-p.Bits)%8)), p.Window)
		got, _ := io.ReadAll(io.LimitReader(fr, 4096))
		if want := data[p.Out:min(p.Out+int64(len(got)), int64(len(data)))]; len(got) == 0 && p.Out < int64(len(data)) || !bytes.Equal(got, want) {
			t.Fatalf("checkpoint %d: resuming gives other bytes", i)
		}
	}
}

// checkFiles compares z's file table with the tar stream data.
func checkFiles(t *testing.T, z *Ztoc, data []byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	for i := 0; ; i++ {
		h, err := tr.Next()
		if err == io.EOF {
			if i != len(z.Files) {
				t.Fatalf("%d files, the tar has %d", len(z.Files), i)
			}
			return
		}
		f := z.Files[i]
		if f.Name != h.Name || f.Size != h.Size || f.Linkname != h.Linkname || f.Mode != h.Mode ||
			!f.ModTime.Equal(h.ModTime) || f.ModTime.Location() != time.UTC || len(f.PAXRecords) != len(h.PAXRecords) {
			t.Fatalf("file %d: %+v, tar header %+v", i, f, h)
		}
		if h.Typeflag == tar.TypeReg {
			content, _ := io.ReadAll(tr)
			if !bytes.Equal(data[f.Offset:f.Offset+f.Size], content) {
				t.Fatalf("file %q: offset %d is not its data", f.Name, f.Offset)
			}
		}
	}
}

func TestIndexUncompressed(t *testing.T) {
	data := kindsTar(t)
	z := index(t, data, Uncompressed)
	enc, _ := Encode(z)
	dec, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	checkFiles(t, dec, data)
	tz, err := DecodeTarZinfo(dec.Checkpoints)
	if err != nil || tz.Size != int64(len(data)) || tz.SpanSize != testSpan || tz.Spans() != int64(len(dec.SpanDigests)) {
		t.Fatalf("%+v, %v", tz, err)
	}
	for i, d := range dec.SpanDigests {
		if want := digest.FromBytes(data[i*testSpan : min((i+1)*testSpan, len(data))]); d != want {
			t.Fatalf("span %d", i)
		}
	}
}

func TestIndexBadLayer(t *testing.T) {
	data := kindsTar(t)
	layer := gzipMembers(t, 6, data)
	cases := map[string]struct {
		layer []byte
		c     Compression
		opts  []Option
		want  error
	}{
		"truncated gzip": {layer[:len(layer)/2], Gzip, nil, ErrInvalidLayer},
		"not gzip":       {data, Gzip, nil, ErrInvalidLayer},
		"empty":          {nil, Gzip, nil, ErrInvalidLayer},
		"too large":      {layer, Gzip, []Option{WithMaxLayerSize(1 << 20)}, ErrTooLarge},
		"too many spans": {layer, Gzip, []Option{WithMaxSpans(3)}, ErrTooLarge},
		"too many files": {data, Uncompressed, []Option{WithMaxFiles(3)}, ErrTooLarge},
	}
	for name, c := range cases {
		_, err := Index(context.Background(), bytes.NewReader(c.layer), c.c, append([]Option{WithSpanSize(testSpan)}, c.opts...)...)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
}

// badZtoc returns a valid zTOC's values with change applied, encoded.
func badZtoc(t *testing.T, change func(z *Ztoc, cp *Checkpoints)) []byte {
	t.Helper()
	data := kindsTar(t)
	z := index(t, gzipMembers(t, 6, data), Gzip)
	cp, err := DecodeCheckpoints(z.Checkpoints)
	if err != nil {
		t.Fatal(err)
	}
	change(z, cp)
	z.Checkpoints = cp.Encode()
	enc, err := Encode(z)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func TestDecodeBad(t *testing.T) {
	cases := map[string]struct {
		change func(z *Ztoc, cp *Checkpoints)
		opts   []Option
		want   error
	}{
		"valid":               {func(*Ztoc, *Checkpoints) {}, nil, nil},
		"offsets decrease":    {func(_ *Ztoc, cp *Checkpoints) { cp.Points[2].In = cp.Points[1].In }, nil, ErrInvalid},
		"outputs decrease":    {func(_ *Ztoc, cp *Checkpoints) { cp.Points[2].Out = cp.Points[1].Out - 1 }, nil, ErrInvalid},
		"bits over 7":         {func(_ *Ztoc, cp *Checkpoints) { cp.Points[1].Bits = 8 }, nil, ErrInvalid},
		"max span id":         {func(z *Ztoc, _ *Checkpoints) { z.MaxSpanID++ }, nil, ErrInvalid},
		"digests short":       {func(z *Ztoc, _ *Checkpoints) { z.SpanDigests = z.SpanDigests[1:]; z.MaxSpanID-- }, nil, ErrInvalid},
		"bad digest":          {func(z *Ztoc, _ *Checkpoints) { z.SpanDigests[0] = "sha256:00" }, nil, ErrInvalid},
		"claims terabytes":    {func(z *Ztoc, _ *Checkpoints) { z.UncompressedArchiveSize = 5 << 40 }, nil, ErrTooLarge},
		"checkpoint past end": {func(z *Ztoc, _ *Checkpoints) { z.CompressedArchiveSize = 100 }, nil, ErrInvalid},
		"files overlap":       {func(z *Ztoc, _ *Checkpoints) { z.Files[3].Offset = z.Files[2].Offset }, nil, ErrInvalid},
		"file past end":       {func(z *Ztoc, _ *Checkpoints) { z.Files[3].Size = z.UncompressedArchiveSize }, nil, ErrInvalid},
		"unknown type":        {func(z *Ztoc, _ *Checkpoints) { z.Files[0].Type = "sock" }, nil, ErrInvalid},
		"compression":         {func(z *Ztoc, _ *Checkpoints) { z.Compression = 3 }, nil, ErrInvalid},
		"too many files":      {func(*Ztoc, *Checkpoints) {}, []Option{WithMaxFiles(2)}, ErrTooLarge},
		"too many spans":      {func(*Ztoc, *Checkpoints) {}, []Option{WithMaxSpans(2)}, ErrTooLarge},
		"too many strings":    {func(*Ztoc, *Checkpoints) {}, []Option{WithMaxStringBytes(100)}, ErrTooLarge},
		"too large":           {func(*Ztoc, *Checkpoints) {}, []Option{WithMaxZtocSize(1000)}, ErrTooLarge},
		"too many records":    {func(*Ztoc, *Checkpoints) {}, []Option{WithMaxPAXRecords(1)}, ErrTooLarge},
	}
	for name, c := range cases {
		var enc []byte
		if name == "compression" {
			// Encode refuses it: write a valid zTOC and patch the byte.
			enc = badZtoc(t, func(z *Ztoc) func(*Ztoc, *Checkpoints) {
				return func(z *Ztoc, _ *Checkpoints) { z.Compression = Uncompressed }
			}(nil))
			i := bytes.LastIndexByte(enc, byte(Uncompressed))
			enc[i] = 3
		} else {
			enc = badZtoc(t, c.change)
		}
		_, err := Decode(enc, c.opts...)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
}

func TestDecodeTruncated(t *testing.T) {
	enc := badZtoc(t, func(*Ztoc, *Checkpoints) {})
	for n := 0; n < len(enc); n += 1 + n/7 {
		if _, err := Decode(enc[:n]); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%d of %d bytes: %v", n, len(enc), err)
		}
	}
}

func TestCheckpointsLegacy(t *testing.T) {
	cp := &Checkpoints{SpanSize: 100, Points: []Checkpoint{
		{In: 10, Window: make([]byte, WindowSize)},
		{In: 500, Out: 1000, Bits: 3, Window: bytes.Repeat([]byte{7}, WindowSize)},
	}}
	v2 := cp.Encode()
	cp.Legacy = true
	v1 := cp.Encode()
	if len(v2) != blobHeaderSize+2*packedSize || len(v1) != blobHeaderSize+packedSize || binary.LittleEndian.Uint32(v1) != 2 {
		t.Fatalf("blob sizes %d, %d", len(v2), len(v1))
	}
	for _, blob := range [][]byte{v1, v2} {
		got, err := DecodeCheckpoints(blob)
		if err != nil || len(got.Points) != 2 || got.Points[0].In != 10 || got.Points[1].Bits != 3 || !bytes.Equal(got.Encode(), blob) {
			t.Fatalf("%d-byte blob: %+v, %v", len(blob), got, err)
		}
	}
	if _, err := DecodeCheckpoints(v1[:len(v1)-1]); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short blob: %v", err)
	}
	huge := bytes.Clone(v1)
	binary.LittleEndian.PutUint32(huge, 1<<30)
	if _, err := DecodeCheckpoints(huge); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("claims 2^30 checkpoints: %v", err)
	}
}

// TestTimesAnyZone checks that a zTOC made in another zone decodes, and
// encodes back to the same bytes.
func TestTimesAnyZone(t *testing.T) {
	z := index(t, gzipMembers(t, 6, kindsTar(t)), Gzip)
	zone := time.FixedZone("", -7*3600)
	for i := range z.Files {
		z.Files[i].ModTime = z.Files[i].ModTime.In(zone)
	}
	enc, _ := Encode(z)
	if !bytes.Contains(enc, []byte("-07:00")) {
		t.Fatal("no zone in the times")
	}
	dec, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := Encode(dec); !bytes.Equal(again, enc) {
		t.Fatal("times change zone")
	}
}
