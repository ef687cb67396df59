package cache

import (
	"math"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/opencontainers/go-digest"
)

// Memory is an in-memory [Cache] bounded by the total length of its
// entries, evicting the least recently used entry first.
//
// Memory keeps the slices passed to Add and returns them from Get without
// copying: callers must not modify data after adding it or after getting it.
// Add hashes data and refuses data that does not match its key, so that
// Get, the frequent operation, returns only verified data without hashing
// it (see [Verifying]).
//
// A Memory must be created with [NewMemory]. It is safe for concurrent use.
type Memory struct {
	maxBytes int64

	mu        sync.Mutex
	lru       *simplelru.LRU[digest.Digest, []byte]
	bytes     int64
	hits      uint64
	misses    uint64
	evictions uint64
	refused   uint64
}

var (
	_ Verifying = (*Memory)(nil)
	_ Prober    = (*Memory)(nil)
)

// NewMemory returns an empty Memory that holds at most maxBytes bytes of
// entry data (bookkeeping overhead is not counted). An entry longer than
// maxBytes is never stored; with maxBytes <= 0 nothing is.
func NewMemory(maxBytes int64) *Memory {
	m := &Memory{maxBytes: maxBytes}
	// The entry-count bound of simplelru is effectively disabled: the
	// byte bound is enforced by Add. The callback keeps the byte count
	// right however an entry leaves the list.
	lru, err := simplelru.NewLRU(math.MaxInt, func(_ digest.Digest, data []byte) {
		m.bytes -= int64(len(data))
	})
	if err != nil {
		// NewLRU fails only for a non-positive size.
		panic("cache: NewMemory: " + err.Error())
	}
	m.lru = lru
	return m
}

// Get returns the data stored under key and marks it most recently used.
// The caller must not modify the returned slice.
func (m *Memory) Get(key digest.Digest) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.lru.Get(key)
	if ok {
		m.hits++
	} else {
		m.misses++
	}
	return data, ok
}

// Has reports whether an entry is stored under key, without marking it
// used or counting a lookup.
func (m *Memory) Has(key digest.Digest) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Contains(key)
}

// Remove drops the entry stored under key, if any, freeing its bytes at
// once, as [Dir.Remove] does for a caller that knows nothing will read it
// again.
func (m *Memory) Remove(key digest.Digest) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.Remove(key)
}

// Add stores data under key, without copying it, and evicts least recently
// used entries until the cache is within its byte budget. If key is
// already present, Add only marks it most recently used. Data longer than
// the whole budget is not stored, nor is data that does not match key (a
// key this package cannot compute, see [ErrInvalidKey], never matches).
func (m *Memory) Add(key digest.Digest, data []byte) { m.add(key, data, false) }

// AddVerified is Add without the hash, for data the caller has verified
// to have the digest key (see [VerifiedAdder]).
func (m *Memory) AddVerified(key digest.Digest, data []byte) { m.add(key, data, true) }

func (m *Memory) add(key digest.Digest, data []byte, verified bool) {
	size := int64(len(data))
	if size > m.maxBytes {
		return
	}
	m.mu.Lock()
	_, present := m.lru.Get(key)
	m.mu.Unlock()
	if present {
		return // same key, same content
	}
	if validateKey(key) != nil || !verified && key.Algorithm().FromBytes(data) != key {
		m.mu.Lock()
		m.refused++
		m.mu.Unlock()
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.lru.Get(key); ok {
		return // added meanwhile
	}
	m.lru.Add(key, data)
	m.bytes += size
	for m.bytes > m.maxBytes {
		m.lru.RemoveOldest()
		m.evictions++
	}
}

// Stats returns a snapshot of the cache's counters.
func (m *Memory) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{
		Hits:           m.hits,
		Misses:         m.misses,
		Evictions:      m.evictions,
		VerifyFailures: m.refused,
		Entries:        int64(m.lru.Len()),
		Bytes:          m.bytes,
	}
}

// VerifiesContent reports true: Add refuses data that does not match its
// key.
func (m *Memory) VerifiesContent() bool { return true }
