package reader

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/registrytest"
	"github.com/lazylayer/lazylayer/toc"
	"github.com/lazylayer/lazylayer/writer"
	"github.com/opencontainers/go-digest"
)

// indexHeavyTar returns a tar of one small file, "hello", and n symlinks
// whose targets are 4000 bytes of incompressible text, so that the
// layer's index (which spells every target, as does the zstd:chunked
// tar-split) compresses to about 3 KB per symlink: a large index without
// a large layer to build.
func indexHeavyTar(t testing.TB, n int) []byte {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	rng := rand.New(rand.NewPCG(uint64(n), 3))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hello := []byte("hello, world\n")
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "hello", Mode: 0o644, Size: int64(len(hello)), ModTime: modTime}); err != nil {
		t.Fatal(err)
	}
	tw.Write(hello)
	target := make([]byte, 4000)
	for i := range n {
		for j := range target {
			target[j] = alphabet[rng.IntN(len(alphabet))]
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: fmt.Sprintf("l/%06d", i), Linkname: string(target), ModTime: modTime}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// openRecording opens blob through a fetcher that records its requests:
// each Fetch call is a round trip, each range one request of it.
func openRecording(t *testing.T, blob []byte, opts ...Option) (l *Layer, roundTrips int, requests []fetcher.Range, err error) {
	t.Helper()
	f := &countingFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob), int64(len(blob)), fetcher.WithObserver(func(info fetcher.RequestInfo) {
		requests = append(requests, info.Spans...)
	}))}
	l, err = Open(context.Background(), f, opts...)
	if err == nil {
		t.Cleanup(func() { l.Close() })
	}
	return l, int(f.calls.Load()), requests, err
}

// TestOpenRoundTrips checks what Open fetches from layers whose index
// fits the default tail or is far larger (3.5 MB, and 17 MB, beyond the
// HTTP fetcher's 16 MiB request size): one request of index and footer
// with the annotations the writer made, also when only the index position
// is given; without annotations, the default tail and, when the index
// starts before it, exactly the missing bytes, in a second round trip;
// and the same at most when the position annotation lies about the start.
func TestOpenRoundTrips(t *testing.T) {
	for _, size := range []struct {
		name  string
		index int64 // bytes of index region to aim for, 0 for a small layer
	}{{"small", 0}, {"3.5MB", 3_500_000}, {"17MB", 17_000_000}} {
		for _, format := range []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked} {
			t.Run(fmt.Sprintf("%s/%v", size.name, format), func(t *testing.T) {
				if size.index > 10<<20 && testing.Short() {
					t.Skip("a large layer to build")
				}
				perLink := int64(3700) // index bytes per symlink; zstd:chunked spells each twice
				if format == toc.FormatZstdChunked {
					perLink = 6700
				}
				tarData := indexHeavyTar(t, int(size.index/perLink))
				blob, res := writerBlob(t, tarData, writer.WithFormat(format), writer.WithCompressionLevel(1))
				blobSize := int64(len(blob))
				start, _, err := toc.ParseIndexPositionAnnotations(res.Annotations)
				if err != nil {
					t.Fatal(err)
				}
				if region := blobSize - start; region < size.index || size.index == 0 && region > DefaultTailHint {
					t.Fatalf("index region of %d bytes, want %d", region, size.index)
				}
				tail := max(blobSize-DefaultTailHint, 0)
				withoutAnnotations := []fetcher.Range{{Offset: tail, Length: blobSize - tail}}
				if start < tail {
					withoutAnnotations = append(withoutAnnotations, fetcher.Range{Offset: start, Length: tail - start})
				}
				annotated := []fetcher.Range{{Offset: start, Length: blobSize - start}}
				if format == toc.FormatZstdChunked {
					// The format's own positions: its frames, no footer.
					annotated[0].Length -= zstdchunked.LegacyFooterSize // what the writer writes
				}
				// Annotations that pin the TOC but do not locate it, and
				// the same with an index position.
				pinOnly := maps.Clone(res.Annotations)
				delete(pinOnly, toc.AnnotationIndexPosition)
				for k := range pinOnly {
					if strings.HasSuffix(k, "-position") {
						delete(pinOnly, k)
					}
				}
				position := func(offset int64) map[string]string {
					a := maps.Clone(pinOnly)
					maps.Copy(a, toc.IndexPositionAnnotations(offset, blobSize))
					return a
				}
				late := start + (blobSize-start)/2
				early := max(start-100_000, 0)

				for _, tc := range []struct {
					name        string
					annotations map[string]string
					want        []fetcher.Range // one round trip each
				}{
					{"no annotations", nil, withoutAnnotations},
					{"pin only", pinOnly, withoutAnnotations},
					{"writer's annotations", res.Annotations, annotated},
					{"index position", position(start), []fetcher.Range{{Offset: start, Length: blobSize - start}}},
					{"position too late", position(late), []fetcher.Range{{Offset: late, Length: blobSize - late}, {Offset: start, Length: late - start}}},
					{"position too early", position(early), []fetcher.Range{{Offset: early, Length: blobSize - early}}},
				} {
					opts := []Option{WithTOCDigest(res.TOCDigest)}
					if tc.annotations != nil {
						opts = append(opts, WithAnnotations(tc.annotations))
					}
					l, roundTrips, requests, err := openRecording(t, blob, opts...)
					if err != nil {
						t.Errorf("%s: %v", tc.name, err)
						continue
					}
					if roundTrips != len(tc.want) || !slices.Equal(requests, tc.want) {
						t.Errorf("%s: %d round trips fetching %v, want %v", tc.name, roundTrips, requests, tc.want)
					}
					if got, err := l.ReadFile("hello"); err != nil || string(got) != "hello, world\n" {
						t.Errorf("%s: ReadFile(hello) = %q, %v", tc.name, got, err)
					}
				}
			})
		}
	}
}

// TestOpenRejectsImpossibleIndexPositions checks that an index position
// that cannot be this blob's, or would fetch more than the largest index
// Open accepts, fails Open before anything is fetched, and that one that
// is merely wrong still opens the layer, in at most two round trips.
func TestOpenRejectsImpossibleIndexPositions(t *testing.T) {
	blob, res := writerBlob(t, indexHeavyTar(t, 30)) // an index of some 110 KB
	size := int64(len(blob))
	start, _, err := toc.ParseIndexPositionAnnotations(res.Annotations)
	if err != nil {
		t.Fatal(err)
	}
	with := func(value string) map[string]string {
		a := maps.Clone(res.Annotations)
		a[toc.AnnotationIndexPosition] = value
		return a
	}
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		opts        []Option
		want        []error // nil: Open succeeds
		roundTrips  int
	}{
		{"malformed", with("12:-3"), nil, []error{ErrCorrupt, toc.ErrInvalidAnnotation}, 0},
		{"short of the end", with(fmt.Sprintf("%d:%d", start, size-start-1)), nil, []error{ErrCorrupt}, 0},
		{"past the end", with(fmt.Sprintf("%d:%d", start, size-start+1)), nil, []error{ErrCorrupt}, 0},
		{"beyond the TOC limit", res.Annotations, []Option{WithMaxTOCSize(1000)}, []error{ErrCorrupt, toc.ErrTOCTooLarge}, 0},
		{"whole blob", with(fmt.Sprintf("0:%d", size)), nil, nil, 1},
		{"in the footer", with(fmt.Sprintf("%d:1", size-1)), nil, nil, 2},
	} {
		l, roundTrips, _, err := openRecording(t, blob, append(tc.opts, WithAnnotations(tc.annotations))...)
		for _, want := range tc.want {
			if !errors.Is(err, want) {
				t.Errorf("%s: error %v, want %v", tc.name, err, want)
			}
		}
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			} else if got, err := l.ReadFile("hello"); err != nil || string(got) != "hello, world\n" {
				t.Errorf("%s: ReadFile(hello) = %q, %v", tc.name, got, err)
			}
		}
		if roundTrips != tc.roundTrips {
			t.Errorf("%s: %d round trips, want %d", tc.name, roundTrips, tc.roundTrips)
		}
	}
}

// TestOpenOverHTTP counts the HTTP requests of an Open: with the layer
// descriptor's size (fetcher.WithSize) and annotations, one; with neither,
// a HEAD for the size, then the tail and the index's missing start.
func TestOpenOverHTTP(t *testing.T) {
	for _, format := range []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked} {
		blob, res := writerBlob(t, indexHeavyTar(t, 500), writer.WithFormat(format), writer.WithCompressionLevel(1))
		size := int64(len(blob))
		start, _, err := toc.ParseIndexPositionAnnotations(res.Annotations)
		if err != nil {
			t.Fatal(err)
		}
		end := size // of what the annotations locate
		if format == toc.FormatZstdChunked {
			end -= zstdchunked.LegacyFooterSize
		}
		tail := size - DefaultTailHint
		if start >= tail {
			t.Fatalf("%v: index of %d bytes fits the default tail", format, size-start)
		}
		for _, tc := range []struct {
			name string
			opts []fetcher.HTTPOption
			ropt []Option
			want []string
		}{
			{"descriptor", []fetcher.HTTPOption{fetcher.WithSize(size)}, []Option{WithAnnotations(res.Annotations)},
				[]string{fmt.Sprintf("GET bytes=%d-%d", start, end-1)}},
			{"blob only", nil, []Option{WithTOCDigest(res.TOCDigest)},
				[]string{"HEAD ", fmt.Sprintf("GET bytes=%d-%d", tail, size-1), fmt.Sprintf("GET bytes=%d-%d", start, tail-1)}},
		} {
			srv := registrytest.NewBlobServer(t, blob)
			f, err := fetcher.NewHTTP(srv.BlobURL(), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			l, err := Open(t.Context(), f, tc.ropt...)
			if err != nil {
				t.Fatalf("%v: %s: %v", format, tc.name, err)
			}
			l.Close()
			var got []string
			for _, q := range srv.Log() {
				got = append(got, q.Method+" "+q.Range)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%v: %s: requests %q, want %q", format, tc.name, got, tc.want)
			}
		}
	}
}

// FuzzOpenIndexPosition opens a good layer of either format with an
// arbitrary index position annotation, offset:length, where length is
// short of the blob's end by short bytes (so that most inputs end there).
// Open must fail with ErrCorrupt before fetching anything, or open the
// very layer the pinned digest names, in at most two round trips and
// fetching no more than the annotation's bound and the index.
func FuzzOpenIndexPosition(f *testing.F) {
	f.Add(false, int64(0), int64(0))
	f.Add(true, int64(-1), int64(100))
	f.Add(false, int64(1<<62), int64(-1<<62))
	tarData := indexHeavyTar(f, 2)
	type layer struct {
		blob      []byte
		pin       map[string]string
		tocDigest digest.Digest
		start     int64
	}
	var layers [2]layer
	for i, format := range []toc.Format{toc.FormatEStargz, toc.FormatZstdChunked} {
		var blob bytes.Buffer
		res, err := writer.Build(context.Background(), &blob, bytes.NewReader(tarData), writer.WithFormat(format))
		if err != nil {
			f.Fatal(err)
		}
		start, _, err := toc.ParseIndexPositionAnnotations(res.Annotations)
		if err != nil {
			f.Fatal(err)
		}
		pin := maps.Clone(res.Annotations)
		delete(pin, zstdchunked.AnnotationManifestPosition)
		delete(pin, zstdchunked.AnnotationTarSplitPosition)
		layers[i] = layer{blob.Bytes(), pin, res.TOCDigest, start}
		f.Add(i == 1, start, int64(0))
		f.Add(i == 1, start+10, int64(0))
		f.Add(i == 1, start-10, int64(1))
	}
	const maxTOC = 64 << 10
	f.Fuzz(func(t *testing.T, zstd bool, offset, short int64) {
		lr := layers[0]
		if zstd {
			lr = layers[1]
		}
		length := int64(len(lr.blob)) - offset - short
		a := maps.Clone(lr.pin)
		a[toc.AnnotationIndexPosition] = fmt.Sprintf("%d:%d", offset, length)
		var fetched int64
		fe := &countingFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(lr.blob), int64(len(lr.blob)), fetcher.WithObserver(func(info fetcher.RequestInfo) {
			fetched += info.Bytes
		}))}
		l, err := Open(context.Background(), fe, WithAnnotations(a), WithTOCDigest(lr.tocDigest), WithMaxTOCSize(maxTOC))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || fe.calls.Load() != 0 {
				t.Fatalf("%d:%d: error %v after %d round trips", offset, length, err, fe.calls.Load())
			}
			return
		}
		defer l.Close()
		if n := fe.calls.Load(); n > 2 || fetched > maxIndexRegion(newConfig([]Option{WithMaxTOCSize(maxTOC)}))+int64(len(lr.blob))-lr.start {
			t.Fatalf("%d:%d: %d round trips, %d bytes", offset, length, n, fetched)
		}
		if l.TOC().Digest != lr.tocDigest {
			t.Fatalf("%d:%d: opened TOC %s, pinned %s", offset, length, l.TOC().Digest, lr.tocDigest)
		}
		if got, err := l.ReadFile("hello"); err != nil || string(got) != "hello, world\n" {
			t.Fatalf("%d:%d: ReadFile(hello) = %q, %v", offset, length, got, err)
		}
	})
}

// FuzzOpenZstdChunkedTOCPosition opens a good zstd:chunked layer with
// annotations that pin its TOC and give an arbitrary TOC position and no
// tar-split, as other tools annotate zstd:chunked. Open must fail with
// ErrCorrupt, or open the very layer the pinned digest names, with its
// tar-split, in at most two round trips, fetching no more than the first
// fetch's bound (zstdChunkedTail) and the index.
func FuzzOpenZstdChunkedTOCPosition(f *testing.F) {
	var blob bytes.Buffer
	res, err := writer.Build(context.Background(), &blob, bytes.NewReader(indexHeavyTar(f, 2)), writer.WithFormat(toc.FormatZstdChunked))
	if err != nil {
		f.Fatal(err)
	}
	_, footer, err := zstdchunked.ParseAnnotations(res.Annotations)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(footer.TOCOffset, footer.TOCLength, footer.TOCUncompressedLength)
	f.Add(footer.TOCOffset+1, footer.TOCLength, footer.TOCUncompressedLength)
	f.Add(int64(8), footer.TOCLength*3, footer.TOCUncompressedLength)
	f.Add(int64(1<<62), int64(1<<62), int64(1))
	const maxTOC, hint = 64 << 10, 4 << 10
	size := int64(blob.Len())
	index := size - (footer.TOCOffset - zstdchunked.SkippableFrameHeaderSize)
	bound := max(hint, zstdchunked.SkippableFrameHeaderSize+3*maxCompressed(maxTOC)+maxUnvouchedTarSplit+toc.MaxFooterSize) + index
	f.Fuzz(func(t *testing.T, offset, length, uncompressed int64) {
		a := map[string]string{
			zstdchunked.AnnotationManifestChecksum: res.Annotations[zstdchunked.AnnotationManifestChecksum],
			zstdchunked.AnnotationManifestPosition: fmt.Sprintf("%d:%d:%d:1", offset, length, uncompressed),
		}
		var fetched int64
		fe := &countingFetcher{Fetcher: fetcher.FromReaderAt(bytes.NewReader(blob.Bytes()), size, fetcher.WithObserver(func(info fetcher.RequestInfo) {
			fetched += info.Bytes
		}))}
		l, err := Open(context.Background(), fe, WithAnnotations(a), WithMaxTOCSize(maxTOC), WithTailHint(hint))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: error %v", a[zstdchunked.AnnotationManifestPosition], err)
			}
			return
		}
		defer l.Close()
		if n := fe.calls.Load(); n > 2 || fetched > bound {
			t.Fatalf("%s: %d round trips, %d bytes", a[zstdchunked.AnnotationManifestPosition], n, fetched)
		}
		if l.TOC().Digest != res.TOCDigest || l.TOC().TarSplitDigest == "" {
			t.Fatalf("%s: opened TOC %s (tar-split %q), want %s", a[zstdchunked.AnnotationManifestPosition], l.TOC().Digest, l.TOC().TarSplitDigest, res.TOCDigest)
		}
		if got, err := l.ReadFile("hello"); err != nil || string(got) != "hello, world\n" {
			t.Fatalf("ReadFile(hello) = %q, %v", got, err)
		}
	})
}
