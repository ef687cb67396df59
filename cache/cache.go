package cache

import (
	"errors"

	"github.com/opencontainers/go-digest"
)

// Cache stores immutable byte strings under their own digest. Keys are
// content addresses: key is always the digest of data, so an
// implementation may verify what it returns and treat a mismatch as a miss.
// Implementations are safe for concurrent use and may drop any entry at
// any time.
type Cache interface {
	// Get returns the bytes stored under key. The caller must not modify
	// the returned slice.
	Get(key digest.Digest) (data []byte, ok bool)
	// Add stores data under key. The cache may keep data without copying,
	// so the caller must not modify it afterwards.
	Add(key digest.Digest, data []byte)
}

// Verifying is implemented by caches that can promise that Get returns
// only data matching its key, because they check data when it is added,
// when it is read, or both. A consumer that would otherwise hash what Get
// returns, to trust a cache shared with code it does not control, may skip
// that when VerifiesContent reports true. [Memory] and [Dir] always
// verify; a [Tiered] does when both its tiers do.
type Verifying interface {
	Cache
	// VerifiesContent reports whether every Get returns only data whose
	// digest is its key.
	VerifiesContent() bool
}

// VerifiedAdder is implemented by caches that hash what is added to them
// and can skip that for data whose caller has just hashed it. A lazy
// reader verifies every chunk it decompresses; adding the chunk through
// AddVerified spares a second hash of every byte it reads.
type VerifiedAdder interface {
	Cache
	// AddVerified is Add for data that the caller has found, by hashing
	// it, to have the digest key. Passing anything else corrupts the
	// cache.
	AddVerified(key digest.Digest, data []byte)
}

// AddVerified stores in c data that the caller has found to have the
// digest key: through c's AddVerified if it is a VerifiedAdder, else
// through Add.
func AddVerified(c Cache, key digest.Digest, data []byte) {
	if v, ok := c.(VerifiedAdder); ok {
		v.AddVerified(key, data)
		return
	}
	c.Add(key, data)
}

// A Prober can tell whether it holds an entry without reading it. A lazy
// reader deciding which chunks to fetch asks it, rather than load, hash
// and discard every chunk it already has.
type Prober interface {
	Cache
	// Has reports whether an entry is stored under key. An entry it
	// reports may still be missed by a later Get: a cache may drop an
	// entry, or find it damaged, at any time.
	Has(key digest.Digest) bool
}

// Has reports whether c holds an entry under key: through c's Has if it
// is a Prober, else through Get.
func Has(c Cache, key digest.Digest) bool {
	if p, ok := c.(Prober); ok {
		return p.Has(key)
	}
	_, ok := c.Get(key)
	return ok
}

// Errors returned by the error-reporting methods of the caches in this
// package (for example [Dir.Store] and [Dir.Load]). Test for them with
// [errors.Is]; the returned errors wrap them with the key and the reason.
var (
	// ErrNotFound reports that no entry is stored under a key.
	ErrNotFound = errors.New("entry not found")
	// ErrInvalidKey reports a key that is not a well-formed digest of an
	// algorithm this package can compute (sha256, sha384 or sha512).
	// [Dir] rejects such keys, since it derives file names from keys.
	ErrInvalidKey = errors.New("invalid key")
	// ErrTooLarge reports an entry longer than a cache accepts: longer
	// than its whole budget or, for [Dir], than its entry bound (see
	// [WithMaxEntrySize]). Such an entry is never stored.
	ErrTooLarge = errors.New("entry too large")
	// ErrDigestMismatch reports data that is not the content addressed
	// by the key it was stored under.
	ErrDigestMismatch = errors.New("data does not match key")
	// ErrCorrupt reports a stored entry whose content no longer matches
	// its key. The entry has been removed; the lookup is a miss.
	ErrCorrupt = errors.New("corrupt entry")
)

// Stats is a snapshot of a cache's counters. Hits, Misses, Evictions and
// VerifyFailures count since the cache was created; Entries and Bytes
// describe its current content.
type Stats struct {
	Hits   uint64 // lookups that returned data
	Misses uint64 // lookups that returned nothing, for any reason
	// Evictions counts entries this cache removed to stay within its
	// byte budget.
	Evictions uint64
	// VerifyFailures counts entries found not to match their key: for
	// [Dir], stored entries found damaged on lookup (each is also a
	// miss); for [Memory], data refused by Add.
	VerifyFailures uint64
	Entries        int64 // entries currently stored
	Bytes          int64 // sum of the lengths of the stored entries
}
