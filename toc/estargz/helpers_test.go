package estargz

import (
	"testing"

	"github.com/lazylayer/lazylayer/internal/toctest"
	"github.com/lazylayer/lazylayer/toc"
)

// readGoldenFooter returns a golden blob with its footer.
func readGoldenFooter(t testing.TB, name string) ([]byte, toc.Footer) {
	t.Helper()
	blob := toctest.ReadGolden(t, name)
	f, err := ParseFooter(blob)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return blob, f
}
