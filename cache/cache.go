package cache

import "github.com/opencontainers/go-digest"

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
