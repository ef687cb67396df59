package estargz

import (
	"testing"

	"github.com/lazylayer/lazylayer/internal/toctest"
	"github.com/lazylayer/lazylayer/toc"
)

// The helpers both codecs' tests share live in internal/toctest.
var (
	fuzzLimits         = toctest.FuzzLimits
	checkSameDecoding  = toctest.CheckSameDecoding
	checkTOCInvariants = toctest.CheckTOCInvariants
	bytesAllocated     = toctest.BytesAllocated
	randomTOC          = toctest.RandomTOC
	readGolden         = toctest.ReadGolden
	randomString       = toctest.RandomString
	randomBytes        = toctest.RandomBytes
)

// readGoldenFooter returns a golden blob with its footer.
func readGoldenFooter(t testing.TB, name string) ([]byte, toc.Footer) {
	t.Helper()
	blob := readGolden(t, name)
	f, err := ParseFooter(blob)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return blob, f
}
