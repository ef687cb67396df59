package cache

import (
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDirRemoveFreesPackBlocks checks that removing a packed entry frees
// its disk blocks, not only its place in the index.
func TestDirRemoveFreesPackBlocks(t *testing.T) {
	root := t.TempDir()
	d, err := NewDir(root, 4<<20)
	require.NoError(t, err)
	es := newEntries(8, 64<<10)
	for _, e := range es {
		require.NoError(t, d.Store(e.key, e.data))
	}
	packs := packFiles(t, root)
	require.Len(t, packs, 1)
	allocated := func() int64 {
		info, err := os.Stat(packs[0])
		require.NoError(t, err)
		return info.Sys().(*syscall.Stat_t).Blocks * 512
	}
	before := allocated()
	require.GreaterOrEqual(t, before, int64(8*64<<10))

	for _, e := range es[:4] {
		require.NoError(t, d.Remove(e.key))
	}
	assert.Equal(t, Stats{Entries: 4, Bytes: 4 * 64 << 10}, d.Stats())
	// Each record's first and last block hold neighbours' bytes too.
	freed := before - allocated()
	assert.GreaterOrEqual(t, freed, int64(4*(64<<10-2*4096)), "blocks freed")
}
