package interop

import (
	"os"
	"testing"

	"github.com/lazylayer/lazylayer/interop/internal/corpus"
)

// TestMain removes the corpus files that tests and benchmarks built.
func TestMain(m *testing.M) {
	code := m.Run()
	corpus.Cleanup()
	os.Exit(code)
}
