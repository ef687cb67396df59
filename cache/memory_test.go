package cache

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMemoryRoundTrip(t *testing.T) {
	m := NewMemory(1 << 10)
	e := newEntry(1, 100)
	_, ok := m.Get(e.key)
	require.False(t, ok)
	m.Add(e.key, e.data)
	got, ok := m.Get(e.key)
	require.True(t, ok)
	assert.Equal(t, e.data, got)
	assert.Same(t, &e.data[0], &got[0], "Get copies; it must return the added slice")
	assert.Equal(t, Stats{Hits: 1, Misses: 1, Entries: 1, Bytes: 100}, m.Stats())
}

func TestMemoryEvictsLeastRecentlyUsedByBytes(t *testing.T) {
	a, b, c, d := newEntry(1, 40), newEntry(2, 30), newEntry(3, 30), newEntry(4, 50)
	m := NewMemory(100)
	m.Add(a.key, a.data)
	m.Add(b.key, b.data)
	m.Add(c.key, c.data) // exactly 100 bytes: nothing evicted
	require.Equal(t, int64(100), m.Stats().Bytes)
	require.Zero(t, m.Stats().Evictions)

	_, ok := m.Get(a.key) // a is now the most recently used
	require.True(t, ok)
	m.Add(b.key, b.data) // re-adding refreshes b without growing the cache
	require.Equal(t, int64(100), m.Stats().Bytes)

	// d needs 50 bytes: c (least recently used) then a must go.
	m.Add(d.key, d.data)
	st := m.Stats()
	assert.Equal(t, int64(80), st.Bytes)
	assert.Equal(t, int64(2), st.Entries)
	assert.Equal(t, uint64(2), st.Evictions)
	for _, e := range []entry{a, c} {
		_, ok := m.Get(e.key)
		assert.False(t, ok, "entry %s should have been evicted", e.key)
	}
	for _, e := range []entry{b, d} {
		_, ok := m.Get(e.key)
		assert.True(t, ok, "entry %s should have been kept", e.key)
	}
}

func TestMemoryDoesNotStoreEntryLargerThanCache(t *testing.T) {
	small, big := newEntry(1, 10), newEntry(2, 101)
	m := NewMemory(100)
	m.Add(small.key, small.data)
	m.Add(big.key, big.data)
	_, ok := m.Get(big.key)
	assert.False(t, ok)
	_, ok = m.Get(small.key)
	assert.True(t, ok, "an oversized Add must not evict anything")
	assert.Equal(t, int64(10), m.Stats().Bytes)

	whole := newEntry(3, 100)
	m.Add(whole.key, whole.data)
	_, ok = m.Get(whole.key)
	assert.True(t, ok, "an entry of exactly the budget fits")
	assert.Equal(t, int64(100), m.Stats().Bytes)
}

func TestMemoryNonPositiveBudgetStoresNothing(t *testing.T) {
	for _, size := range []int64{0, -1} {
		m := NewMemory(size)
		e := newEntry(1, 1)
		m.Add(e.key, e.data)
		_, ok := m.Get(e.key)
		assert.False(t, ok)
	}
}

func TestMemoryConcurrent(t *testing.T) {
	entries := newEntries(32, 256)
	m := NewMemory(16 * 256) // half the entries fit, so evictions happen
	gets := hammer(t, m, entries, 500)
	st := m.Stats()
	assert.LessOrEqual(t, st.Bytes, int64(16*256))
	assert.Equal(t, gets, st.Hits+st.Misses)
	assert.NotZero(t, st.Evictions)
}

func TestMemoryHasNeitherCountsNorTouches(t *testing.T) {
	m := NewMemory(2000)
	a, b, c := newEntry(1, 1000), newEntry(2, 1000), newEntry(3, 1000)
	m.Add(a.key, a.data)
	m.Add(b.key, b.data)
	require.True(t, Has(m, a.key))
	require.False(t, Has(m, c.key))
	assert.Equal(t, Stats{Entries: 2, Bytes: 2000}, m.Stats(), "Has counted a lookup")
	m.Add(c.key, c.data) // evicts a: Has did not make it recently used
	assert.False(t, m.Has(a.key))
	assert.True(t, m.Has(b.key))
}

func TestMemoryRemoveFreesTheEntry(t *testing.T) {
	m := NewMemory(2000)
	a, b := newEntry(1, 1000), newEntry(2, 1000)
	m.Add(a.key, a.data)
	m.Add(b.key, b.data)
	m.Remove(a.key)
	m.Remove(a.key) // not stored: nothing happens
	assert.False(t, m.Has(a.key))
	assert.Equal(t, Stats{Entries: 1, Bytes: 1000}, m.Stats())
}
