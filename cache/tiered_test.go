package cache

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTieredPromotesLowerHits(t *testing.T) {
	upper := NewMemory(1 << 20)
	lower, err := NewDir(t.TempDir(), 1<<20)
	require.NoError(t, err)
	tiered := NewTiered(upper, lower)
	e := newEntry(1, 1000)
	require.NoError(t, lower.Store(e.key, e.data))

	got, ok := tiered.Get(e.key)
	require.True(t, ok)
	assert.Equal(t, e.data, got)
	assert.Equal(t, uint64(1), lower.Stats().Hits)
	assert.Equal(t, int64(1), upper.Stats().Entries, "lower hit not promoted")

	got, ok = tiered.Get(e.key)
	require.True(t, ok)
	assert.Equal(t, e.data, got)
	assert.Equal(t, uint64(1), lower.Stats().Hits, "promoted entry still read from the lower tier")
	assert.Equal(t, uint64(1), upper.Stats().Hits)
	assert.Equal(t, Stats{Hits: 2}, tiered.Stats())
}

func TestTieredMiss(t *testing.T) {
	upper, lower := NewMemory(1<<20), NewMemory(1<<20)
	tiered := NewTiered(upper, lower)
	_, ok := tiered.Get(newEntry(1, 10).key)
	assert.False(t, ok)
	assert.Equal(t, Stats{Misses: 1}, tiered.Stats())
	assert.Equal(t, uint64(1), upper.Stats().Misses)
	assert.Equal(t, uint64(1), lower.Stats().Misses)
}

func TestTieredAddStoresInBothTiers(t *testing.T) {
	upper, lower := NewMemory(1500), NewMemory(1<<20)
	tiered := NewTiered(upper, lower)
	a, b := newEntry(1, 1000), newEntry(2, 1000)
	tiered.Add(a.key, a.data)
	_, ok := upper.Get(a.key)
	assert.True(t, ok)
	_, ok = lower.Get(a.key)
	assert.True(t, ok)

	// b pushes a out of the small upper tier; the lower tier still serves
	// it and it is promoted back.
	tiered.Add(b.key, b.data)
	_, ok = upper.Get(a.key)
	require.False(t, ok)
	got, ok := tiered.Get(a.key)
	require.True(t, ok)
	assert.Equal(t, a.data, got)
	_, ok = upper.Get(a.key)
	assert.True(t, ok, "entry not promoted back after eviction from the upper tier")
}

func TestTieredConcurrent(t *testing.T) {
	lower, err := NewDir(t.TempDir(), 24*512)
	require.NoError(t, err)
	tiered := NewTiered(NewMemory(8*512), lower)
	gets := hammer(t, tiered, newEntries(32, 512), 100)
	st := tiered.Stats()
	assert.Equal(t, gets, st.Hits+st.Misses)
	assert.Zero(t, lower.Stats().VerifyFailures)
}

func TestTieredHasLooksInBothTiers(t *testing.T) {
	upper, lower := NewMemory(1<<20), NewMemory(1<<20)
	tiered := NewTiered(upper, lower)
	a, b, c := newEntry(1, 100), newEntry(2, 100), newEntry(3, 100)
	upper.Add(a.key, a.data)
	lower.Add(b.key, b.data)
	assert.True(t, tiered.Has(a.key))
	assert.True(t, tiered.Has(b.key))
	assert.False(t, tiered.Has(c.key))
	assert.Equal(t, int64(1), upper.Stats().Entries, "Has promoted an entry")
}
