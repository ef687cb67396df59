package reader

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/lazylayer/lazylayer/toc"
	"github.com/opencontainers/go-digest"
)

// TestOpenRejectsFileDigestContradictingItsChunk opens indexes where a
// file of one chunk, or none, has a digest its content cannot have: its
// chunk's digest checks out, so reads would return the bytes and callers
// that deduplicate by Entry.Digest would be misled.
func TestOpenRejectsFileDigestContradictingItsChunk(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content []byte
	}{
		{"one chunk", []byte("content")},
		{"empty", nil},
	} {
		b := &blobBuilder{}
		e := b.add(&toc.Entry{Name: "f", Mode: 0o644}, tc.content)
		e.Digest = digest.FromString("something else")
		data, index := b.finish()
		l, err := openBlob(assemble(t, data, index))
		if err == nil {
			got, rerr := l.ReadFile("f")
			l.Close()
			t.Errorf("%s: Open succeeded; ReadFile = %q, %v", tc.name, got, rerr)
		} else if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error %v, want ErrCorrupt", tc.name, err)
		}
	}
	// zstd:chunked leaves the digest of an empty file empty.
	b := &blobBuilder{}
	b.add(&toc.Entry{Name: "f", Mode: 0o644}, nil).Digest = ""
	data, index := b.finish()
	l, err := openBlob(assemble(t, data, index))
	if err != nil {
		t.Fatalf("empty file without a digest: %v", err)
	}
	l.Close()
}

// badDigestLayer returns a layer whose file "f" has three chunks that
// match their digests, but not the file's digest.
func badDigestLayer(t *testing.T) (*Layer, []byte) {
	t.Helper()
	b := &blobBuilder{chunkSize: 1000}
	content := pseudoRandom(2500, 7)
	b.add(&toc.Entry{Name: "f", Mode: 0o644}, content).Digest = digest.FromString("something else")
	blob, index := b.finish()
	l, _ := testLayer(t, blob, index)
	return l, content
}

// TestSequentialReadsCheckFileDigest reads a file of several chunks whose
// digest is wrong, from start to end, in every way that reads a file
// whole: each fails with ErrChunkDigest rather than return the last
// bytes, and every later read of the file fails too.
func TestSequentialReadsCheckFileDigest(t *testing.T) {
	reads := map[string]func(l *Layer) (int, error){
		"ReadFile": func(l *Layer) (int, error) {
			data, err := l.ReadFile("f")
			return len(data), err
		},
		"Read": func(l *Layer) (int, error) {
			f, _ := l.Open("f")
			defer f.Close()
			data, err := io.ReadAll(struct{ io.Reader }{f}) // defeat WriterTo
			return len(data), err
		},
		"WriteTo": func(l *Layer) (int, error) {
			f, _ := l.Open("f")
			defer f.Close()
			var out bytes.Buffer
			n, err := io.Copy(&out, f)
			return int(n), err
		},
	}
	for name, read := range reads {
		l, content := badDigestLayer(t)
		// A read of part of the file cannot know.
		buf := make([]byte, 100)
		f, _ := l.Open("f")
		if _, err := f.(io.ReaderAt).ReadAt(buf, 1500); err != nil {
			t.Fatalf("%s: ReadAt before the file was read whole: %v", name, err)
		}
		f.Close()
		n, err := read(l)
		if !errors.Is(err, ErrChunkDigest) || n >= len(content) {
			t.Errorf("%s: %d of %d bytes, error %v; want fewer, and ErrChunkDigest", name, n, len(content), err)
		}
		// Now every read knows.
		for other, read := range reads {
			if _, err := read(l); !errors.Is(err, ErrChunkDigest) {
				t.Errorf("%s after %s: error %v, want ErrChunkDigest", other, name, err)
			}
		}
		f, _ = l.Open("f")
		if _, err := f.(io.ReaderAt).ReadAt(buf, 1500); !errors.Is(err, ErrChunkDigest) {
			t.Errorf("ReadAt after %s: error %v, want ErrChunkDigest", name, err)
		}
		f.Close()
	}
}

// TestWriteTarChecksFileDigest rebuilds the tar of a zstd:chunked layer
// whose index gives a file of several chunks a digest its content does
// not have, while its chunks, and the tar-split, match the content.
func TestWriteTarChecksFileDigest(t *testing.T) {
	input := zstdChunkedInput(t, 0o644)
	blob, _ := buildZstdChunked(t, input)
	good, err := openBlob(blob)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	var big *toc.Entry
	for _, e := range good.TOC().Entries {
		if e.Name == "big" {
			big = e
		}
	}
	if big == nil || len(big.Chunks) < 2 {
		t.Fatalf("no file of several chunks in %v", good.TOC().Entries)
	}
	data, tocJSON, split := indexParts(t, blob)
	forged := bytes.Replace(tocJSON, []byte(`"digest":"`+big.Digest.String()), []byte(`"digest":"`+digest.FromString("x").String()), 1)
	if bytes.Equal(forged, tocJSON) {
		t.Fatal("digest not found in the TOC")
	}
	l, err := openBlob(reassemble(t, data, forged, split))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out bytes.Buffer
	if _, err := l.WriteTar(context.Background(), &out); !errors.Is(err, ErrChunkDigest) {
		t.Errorf("WriteTar: error %v, want ErrChunkDigest", err)
	}
	// The untouched layer still rebuilds its tar.
	out.Reset()
	if _, err := good.WriteTar(context.Background(), &out); err != nil || !bytes.Equal(out.Bytes(), input) {
		t.Errorf("WriteTar of the intact layer: %v", err)
	}
}
