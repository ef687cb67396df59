package fetcher

import (
	"fmt"
	"testing"
)

// TestGateBoundsHosts checks that a registry redirecting each request to
// another host cannot grow what the gate remembers without bound.
func TestGateBoundsHosts(t *testing.T) {
	g := newGate("registry.example", nil)
	for i := range 10 * maxHosts {
		g.host(fmt.Sprintf("cdn%d.example", i)).ranges = supported
		if len(g.hosts) > maxHosts {
			t.Fatalf("%d hosts remembered, want at most %d", len(g.hosts), maxHosts)
		}
	}
}
