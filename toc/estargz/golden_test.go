package estargz

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"github.com/lazylayer/lazylayer/internal/toctest"
	"github.com/lazylayer/lazylayer/toc"

	"github.com/opencontainers/go-digest"
)

// The golden blobs under testdata were written by the reference
// implementation (github.com/containerd/stargz-snapshotter/estargz v0.19.1)
// with testdata/refgen: the same small tar built three ways (prioritised
// files, none, and a minimum chunk size so that entries share members).
// The .toc.json files are the TOC JSON its decompressor extracts.
var goldenVariants = []struct {
	name        string
	tocDigest   digest.Digest
	prefetchEnd int64
	noPrefetch  bool
}{
	{"small", "sha256:a8f8dfd4d991ad852e83a1544e0b644ae5ec7490d1a4ffc07515266d84ecd044", 434, false},
	{"noprefetch", "sha256:10e68273435f78f57ef463a2f01d1b1385cffbfa6c4dcfb7b26d4a3f1ec72f90", 0, true},
	{"minchunk", "sha256:57a05f2779a741a69c1344f81e01373ce0f12c09a0e3d6347aa43ee5f1d32d51", 207, false},
}

// decodeBlob opens a whole eStargz blob the way a lazy reader would: footer
// from the tail, then the TOC member.
func decodeBlob(t testing.TB, blob []byte) (*toc.TOC, toc.Footer) {
	t.Helper()
	f, err := ParseFooter(blob[max(0, len(blob)-toc.MaxFooterSize):])
	if err != nil {
		t.Fatalf("ParseFooter: %v", err)
	}
	index, err := Decode(blob[f.TOCOffset:len(blob)-f.Size], f.TOCOffset)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return index, f
}

func TestGoldenReferenceBlobs(t *testing.T) {
	for _, v := range goldenVariants {
		t.Run(v.name, func(t *testing.T) {
			blob := toctest.ReadGolden(t, "estargz-"+v.name+".blob")
			wantJSON := toctest.ReadGolden(t, "estargz-"+v.name+".toc.json")

			index, f := decodeBlob(t, blob)
			if f.Format != toc.FormatEStargz || f.Size != FooterSize || f.ExternalTOC {
				t.Errorf("footer = %+v", f)
			}
			if index.Digest != v.tocDigest {
				t.Errorf("Digest = %s, want %s (the reference's)", index.Digest, v.tocDigest)
			}
			if index.PrefetchEnd != v.prefetchEnd || index.NoPrefetch != v.noPrefetch {
				t.Errorf("PrefetchEnd, NoPrefetch = %d, %v; want %d, %v", index.PrefetchEnd, index.NoPrefetch, v.prefetchEnd, v.noPrefetch)
			}

			// Re-encoding the decoded TOC gives the reference's bytes.
			got, err := Marshal(index)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, wantJSON) {
				t.Errorf("Marshal differs from the reference TOC JSON:\n%s\nwant:\n%s", got, wantJSON)
			}
			if digest.FromBytes(got) != v.tocDigest {
				t.Errorf("digest of re-encoded TOC = %s, want %s", digest.FromBytes(got), v.tocDigest)
			}

			// Every chunk decompresses from its frame to the bytes its
			// digest names: the frame fields point at the right data.
			for _, e := range index.Entries {
				for i, c := range e.Chunks {
					data := chunkBytes(t, blob, c)
					if digest.FromBytes(data) != c.Digest {
						t.Errorf("%s chunk %d (%+v): digest mismatch", e.Name, i, c)
					}
				}
			}
		})
	}
}

// chunkBytes decompresses a chunk's frame and returns the chunk's data.
func chunkBytes(t testing.TB, blob []byte, c toc.Chunk) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(blob[c.FrameOffset:c.FrameEnd]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, zr, c.InnerOffset); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, c.Size)
	if _, err := io.ReadFull(zr, data); err != nil {
		t.Fatal(err)
	}
	return data
}

func TestGoldenDecodedFields(t *testing.T) {
	index, _ := decodeBlob(t, toctest.ReadGolden(t, "estargz-small.blob"))
	byName := make(map[string]*toc.Entry)
	for _, e := range index.Entries {
		byName[e.Name] = e
	}
	if index.ChunkSize != 16 {
		t.Errorf("ChunkSize = %d, want 16", index.ChunkSize)
	}

	tool := byName["bin/tool"]
	if tool.Size != 46 || len(tool.Chunks) != 3 {
		t.Fatalf("bin/tool = %+v", tool)
	}
	wantSizes := []int64{16, 16, 14}
	for i, c := range tool.Chunks {
		if c.Offset != int64(16*i) || c.Size != wantSizes[i] || c.InnerOffset != 0 {
			t.Errorf("bin/tool chunk %d = %+v", i, c)
		}
		if i > 0 && tool.Chunks[i-1].FrameEnd != c.FrameOffset {
			t.Errorf("bin/tool chunk %d: previous FrameEnd %d, want %d", i, tool.Chunks[i-1].FrameEnd, c.FrameOffset)
		}
	}
	if got := tool.Xattrs["security.capability"]; got != "\x01\x00\x00\x02" {
		t.Errorf("xattr = %q", got)
	}
	if tool.UserName != "app" || tool.Mode != 0o4755 || tool.UID != 1000 {
		t.Errorf("bin/tool owner/mode = %q %o %d", tool.UserName, tool.Mode, tool.UID)
	}
	// etc/empty carries no userName in the JSON (uid 1000 was named
	// before); the decoder fills it in.
	if e := byName["etc/empty"]; e.UserName != "app" || e.GroupName != "app" || len(e.Chunks) != 0 {
		t.Errorf("etc/empty = %+v", e)
	}
	if e := byName["bin/tool2"]; e.Type != toc.TypeHardlink || e.LinkName != "bin/tool" {
		t.Errorf("bin/tool2 = %+v", e)
	}
	if e := byName["dev/null"]; e.Type != toc.TypeChar || e.DevMajor != 1 || e.DevMinor != 3 {
		t.Errorf("dev/null = %+v", e)
	}
	if e := byName["big<&>"]; e == nil || e.ModTime.Unix() != 1709294400 {
		t.Errorf("big<&> = %+v", e)
	}
	landmark := byName[toc.PrefetchLandmark]
	if landmark.Digest != LandmarkDigest || landmark.Size != 1 || landmark.Mode != 0 || !landmark.ModTime.IsZero() {
		t.Errorf("landmark = %+v", landmark)
	}
}

func TestGoldenMinChunkSharing(t *testing.T) {
	index, _ := decodeBlob(t, toctest.ReadGolden(t, "estargz-minchunk.blob"))
	var shared int
	for _, e := range index.Entries {
		for _, c := range e.Chunks {
			if c.InnerOffset > 0 {
				shared++
			}
		}
	}
	if shared == 0 {
		t.Fatal("no chunk with an innerOffset; the golden blob should share members")
	}
	hosts := index.Entries[1]
	if hosts.Name != "etc/hosts" || hosts.Chunks[0].FrameOffset != 0 || hosts.Chunks[0].InnerOffset != 1024 || hosts.Chunks[0].FrameEnd != 207 {
		t.Errorf("etc/hosts = %+v", hosts)
	}
}

// TestTOCMemberTarMatchesReference checks that the tar stream inside our
// TOC member is byte-identical to the reference's (the gzip bytes differ:
// the reference compresses with compress/gzip, we with klauspost).
func TestTOCMemberTarMatchesReference(t *testing.T) {
	blob, f := toctest.ReadGoldenFooter(t, "estargz-small.blob", ParseFooter)
	refMember := blob[f.TOCOffset : len(blob)-f.Size]
	tocJSON, err := ReadTOCMember(refMember)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tocJSON, toctest.ReadGolden(t, "estargz-small.toc.json")) {
		t.Fatal("ReadTOCMember did not return the reference JSON")
	}
	var ours bytes.Buffer
	if err := WriteTOCMember(&ours, tocJSON, gzip.BestCompression); err != nil {
		t.Fatal(err)
	}
	if got, want := gunzipAll(t, ours.Bytes()), gunzipAll(t, refMember); !bytes.Equal(got, want) {
		t.Fatalf("TOC member tar differs from the reference (%d vs %d bytes)", len(got), len(want))
	}
	// The tar is one entry and the end-of-archive marker.
	tr := tar.NewReader(bytes.NewReader(gunzipAll(t, ours.Bytes())))
	if h, err := tr.Next(); err != nil || h.Name != TOCTarName {
		t.Fatalf("first entry %v, %v", h, err)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Fatalf("second Next = %v, want io.EOF", err)
	}
}

func gunzipAll(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
