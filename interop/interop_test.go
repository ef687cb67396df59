package interop

import (
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/lazylayer/lazylayer/toc"
)

func TestModuleWiring(t *testing.T) {
	_ = toc.FormatEStargz
	_ = estargz.TOCTarName
}
