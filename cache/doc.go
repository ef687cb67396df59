// Package cache stores byte strings by their own digest.
//
// A [Cache] maps a key to the bytes it addresses: the key is always the
// digest of the data, so a cache can check what it returns and can be
// shared by anything that agrees on the content, such as the chunks of
// layers that several images have in common. A cache may drop any entry at
// any time; a miss only means the bytes must be fetched again.
//
// The package provides three caches:
//
//   - [Memory], an in-process LRU bounded by the total length of its
//     entries. It hands out the very slices it was given, so neither side
//     may modify them.
//   - [Dir], a directory bounded in bytes and evicted least recently
//     used first. Entries of up to 1 MiB are records appended to shared
//     pack files (64 MiB each), found through an index in memory; larger
//     ones are files of their own. It survives restarts, can be shared by
//     several processes (which see each other's packed entries from their
//     next scan of the directory), and verifies every entry it reads, so
//     a crash or a damaged disk costs a miss, never wrong bytes. One entry
//     is at most [DefaultMaxEntrySize] (64 MiB) long unless
//     [WithMaxEntrySize] says otherwise, and never longer than the budget;
//     a lookup checks an entry's type and length before it reads any of
//     it, and a scan bounds every length a pack's record headers claim.
//     [Dir.Remove] frees an entry a caller knows is no longer wanted,
//     blocks on disk included, without waiting for eviction.
//   - [Tiered], a fast cache over a slow one (typically a Memory over a
//     Dir) that promotes entries found only in the slow one.
//
// Memory and Dir hash what is added to them; a caller that has just hashed
// the data itself, as a lazy reader has every chunk it verified, adds it
// with [AddVerified] to skip that. All three are a [Prober]: [Has] asks
// whether an entry is there without reading it.
//
// Each cache reports its counters as a [Stats]. The Cache interface has no
// room for errors; [Dir.Store] and [Dir.Load] report them, wrapping the
// sentinel errors of this package ([ErrNotFound], [ErrInvalidKey],
// [ErrTooLarge], [ErrDigestMismatch], [ErrCorrupt]).
//
// The package knows nothing of layer formats or networks.
package cache
