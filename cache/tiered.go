package cache

import (
	"sync/atomic"

	"github.com/opencontainers/go-digest"
)

// Tiered is a [Cache] made of two caches: a small fast upper tier, such as
// a [Memory], over a large slow lower tier, such as a [Dir]. Get looks in
// the upper tier first and copies an entry found only in the lower tier
// into the upper one, so the next lookup of it is fast; Add stores into
// both.
//
// Tiered is safe for concurrent use if both tiers are.
type Tiered struct {
	upper, lower Cache
	hits, misses atomic.Uint64
}

var (
	_ Verifying = (*Tiered)(nil)
	_ Prober    = (*Tiered)(nil)
)

// NewTiered returns a Tiered that keeps entries in upper and lower.
func NewTiered(upper, lower Cache) *Tiered {
	return &Tiered{upper: upper, lower: lower}
}

// Get returns the entry stored under key in either tier, promoting an
// entry found only in the lower tier into the upper one. The caller must
// not modify the returned slice.
func (t *Tiered) Get(key digest.Digest) ([]byte, bool) {
	if data, ok := t.upper.Get(key); ok {
		t.hits.Add(1)
		return data, true
	}
	data, ok := t.lower.Get(key)
	if !ok {
		t.misses.Add(1)
		return nil, false
	}
	t.hits.Add(1)
	if verifies(t.lower) {
		AddVerified(t.upper, key, data)
	} else {
		t.upper.Add(key, data)
	}
	return data, true
}

// Has reports whether either tier holds an entry under key (see Has).
func (t *Tiered) Has(key digest.Digest) bool {
	return Has(t.upper, key) || Has(t.lower, key)
}

// VerifiesContent reports whether both tiers verify their content (see
// [Verifying]).
func (t *Tiered) VerifiesContent() bool {
	return verifies(t.upper) && verifies(t.lower)
}

func verifies(c Cache) bool {
	v, ok := c.(Verifying)
	return ok && v.VerifiesContent()
}

// Add stores data under key in both tiers. The caller must not modify data
// afterwards.
func (t *Tiered) Add(key digest.Digest, data []byte) {
	t.upper.Add(key, data)
	t.lower.Add(key, data)
}

// AddVerified is Add for data the caller has verified to have the digest
// key (see [VerifiedAdder]): tiers that hash what they add skip that.
func (t *Tiered) AddVerified(key digest.Digest, data []byte) {
	AddVerified(t.upper, key, data)
	AddVerified(t.lower, key, data)
}

// Stats reports the lookups of this Tiered as its callers saw them: Hits
// counts entries found in either tier and Misses those found in neither.
// The other fields are zero; each tier reports its own content and
// evictions through its own Stats method.
func (t *Tiered) Stats() Stats {
	return Stats{Hits: t.hits.Load(), Misses: t.misses.Load()}
}
