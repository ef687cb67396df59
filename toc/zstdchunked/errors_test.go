package zstdchunked

import (
	"strings"
	"testing"
)

// TestErrorsQuoteInputShort feeds the zstd:chunked decoders values of a
// megabyte where they report them: no error message may grow with them.
func TestErrorsQuoteInputShort(t *testing.T) {
	long := strings.Repeat("a", 1<<20)
	digits := strings.Repeat("9", 1<<20)
	const d = `"digest":"sha256:081ef9d5367595d16e30b4b4549d9f43537320508b4ce0788963e10e4f808857"`
	docs := map[string]string{
		"unknown type":      `{"version":1,"entries":[{"type":"` + long + `","name":"a"}]}`,
		"name":              `{"version":1,"entries":[{"type":"reg","name":"` + long + `/../x"}]}`,
		"hardlink":          `{"version":1,"entries":[{"type":"hardlink","name":"a","linkName":"../` + long + `"}]}`,
		"modtime":           `{"version":1,"entries":[{"type":"dir","name":"a","modtime":"` + long + `"}]}`,
		"chunkType":         `{"version":1,"entries":[{"type":"reg","name":"` + long + `","size":1,"offset":1,"endOffset":5,` + d + `,"chunkType":"` + long + `"}]}`,
		"number":            `{"version":1,"entries":[{"type":"dir","name":"a","mode":` + digits + `}]}`,
		"string for number": `{"version":1,"entries":[{"type":"dir","name":"a","mode":"` + long + `"}]}`,
		"digest":            `{"version":1,"entries":[{"type":"reg","name":"a","size":1,"digest":"` + long + `"}]}`,
		"tarSplitDigest":    `{"version":1,"entries":[],"tarSplitDigest":"` + long + `"}`,
		"xattr":             `{"version":1,"entries":[{"type":"dir","name":"a","xattrs":{"` + long + `":"!!"}}]}`,
		"chunk of nothing":  `{"version":1,"entries":[{"type":"chunk","name":"` + long + `"}]}`,
	}
	for name, doc := range docs {
		_, _, err := Unmarshal([]byte(doc), 1<<20)
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if len(err.Error()) > 1024 {
			t.Errorf("%s: error of %d bytes: %.200s", name, len(err.Error()), err)
		}
	}
	for name, a := range map[string]map[string]string{
		"checksum": {AnnotationManifestChecksum: long, AnnotationManifestPosition: "1:2:3:1"},
		"position": {AnnotationManifestChecksum: "sha256:081ef9d5367595d16e30b4b4549d9f43537320508b4ce0788963e10e4f808857", AnnotationManifestPosition: long},
		"tar-split position": {AnnotationManifestChecksum: "sha256:081ef9d5367595d16e30b4b4549d9f43537320508b4ce0788963e10e4f808857",
			AnnotationManifestPosition: "100:2:3:1", AnnotationTarSplitPosition: "1:" + digits + ":3"},
	} {
		if _, _, err := ParseAnnotations(a); err == nil {
			t.Errorf("annotation %s: no error", name)
		} else if len(err.Error()) > 1024 {
			t.Errorf("annotation %s: error of %d bytes: %.200s", name, len(err.Error()), err)
		}
	}
}
