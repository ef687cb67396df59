package cache

import (
	"bytes"
	"cmp"
	// The digest package computes only the hashes linked into the binary;
	// these provide every algorithm it knows.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
)

const (
	// tempPrefix starts the name of every file still being written. Such
	// files are never entries and are evicted only once stale.
	tempPrefix = ".tmp-"
	// defaultStaleTempAge is how long a temporary file may go unmodified
	// before it is taken for the leftover of a crashed writer.
	defaultStaleTempAge = time.Hour
)

// DefaultMaxEntrySize bounds the length of one [Dir] entry when
// [WithMaxEntrySize] is not given: 64 MiB, sixteen times the chunk size of
// the writer package. Load reads an entry whole into memory, so this, not
// the directory's budget, bounds what one lookup allocates.
const DefaultMaxEntrySize = 64 << 20

// Dir is a [Cache] that keeps entries in files under a directory, so that
// they survive restarts and can be shared by several processes.
//
// Entries of at most 1 MiB, the bulk of a layer's chunks, are appended as
// records to a pack file: creating a file costs far more than appending
// to one on some file systems. Each Dir appends only to packs it created,
// <dir>/packs/<16 random hex digits>.pack, and starts a new one past
// 64 MiB. A record is self-describing: a 16-byte header (magic "LLpk", a
// flags byte whose bit 0 marks the record removed, the key's length in a
// byte, two zero bytes, the data's length as a big-endian uint64), the
// key ("algorithm:hex") and the data. A Dir keeps an index of the packed
// entries in memory, roughly 200 bytes per entry, which every scan of the
// directory updates from the record headers of the packs other Dirs
// wrote. A scan reads headers as untrusted: it stops reading a pack at
// the first header that is not well formed (bad magic or flags, a key
// that is no valid digest, a data length over 1 MiB or past the end of
// the file), so damage costs the rest of that pack as misses, and a
// record torn by a crash at a pack's end is ignored. Larger entries are
// files, <dir>/<algorithm>/<first two hex digits>/<hex>, written to a
// temporary file in their final directory and renamed into place, so a
// crashed writer never leaves a partial entry under a final name. Every
// lookup hashes the entry and compares it with its key: one that does
// not match (damaged disk, cut by a power loss, edited by hand) is
// removed (a record is marked removed) and reported as a miss, never
// returned. For that reason nothing is synced to disk: a torn entry after
// a power loss costs a miss, not wrong data. A Dir keeps a file
// descriptor open for each pack it has read from.
//
// The directory is bounded by the total length of its entries (headers
// and keys of records are not counted) and is evicted least recently used
// first. A Dir keeps the last use of each packed entry in memory; across
// restarts an entry takes its pack's modification time, which hits update
// at most once a second. A large entry's recency is its file's
// modification time, which every hit and every repeated Add refreshes. A
// Dir keeps an estimate of the directory's size: it scans the directory
// when it is opened and whenever its estimate exceeds the budget, then
// removes the least recently used entries until the total is below 7/8 of
// the budget. Removing a record sets its flag and, on Linux, punches its
// data out of the pack, freeing the blocks it filled whole; a pack with no
// live record left is deleted once no writer holds it. When a single Dir
// uses the directory the estimate never falls below the truth, so the
// budget always holds.
//
// When several processes share a directory, each sees the records the
// others append only from its next scan (large entries at once), and the
// removal of a record from one of its own packs only when it next loads
// that entry (a miss). Two processes may both store one entry: a scan
// keeps one record and, once over budget, evicts the other first. Each
// counts only its own writes between scans, so the directory may exceed
// the budget until one of them scans again. Entries vanishing under a Dir
// are tolerated. A writer holds a shared flock on its pack, and a pack is
// deleted only under an exclusive one, so no Dir deletes a pack another
// still appends to; temporary files are never removed while their writer
// may be alive (see [WithStaleTempAge]). Should one be removed under a
// live writer all the same, that writer's rename fails and its Store
// reports the error; no entry is torn.
//
// Keys must be valid digests (see [ErrInvalidKey]); a key's hex part is the
// only part of a path derived from it, so no key can name a file outside
// the directory. Directories are created with mode 0700 and files with
// mode 0600.
//
// A Dir must be created with [NewDir]. It is safe for concurrent use.
type Dir struct {
	root         string
	maxBytes     int64
	maxEntry     int64 // min(maxBytes, the WithMaxEntrySize bound)
	staleTempAge time.Duration
	packSize     int64 // length past which a writer starts a new pack
	now          func() time.Time

	// mu orders publication against scanning: Store renames a finished
	// file into place, or appends a record, and counts it under the read
	// lock; a scan holds the write lock, so it sees every entry this Dir
	// has counted.
	mu sync.RWMutex

	// appendMu serialises appends to the active pack; it is taken before
	// idx, never after.
	appendMu  sync.Mutex
	active    *pack  // the pack this Dir appends to, or nil
	appendBuf []byte // a record being appended

	// idx guards the index of packed entries and the packs.
	idx   sync.Mutex
	index map[digest.Digest]*record
	packs map[string]*pack // by file name

	bytes          atomic.Int64 // estimated total size of the entry files
	entries        atomic.Int64 // estimated number of entry files
	hits           atomic.Uint64
	misses         atomic.Uint64
	evictions      atomic.Uint64
	verifyFailures atomic.Uint64
}

var (
	_ Verifying = (*Dir)(nil)
	_ Prober    = (*Dir)(nil)
)

// A DirOption configures a [Dir].
type DirOption func(*Dir)

// WithStaleTempAge sets how long a temporary file must have gone without
// being written before a [Dir] takes it for the leftover of a crashed
// writer and removes it. A writer that is alive keeps modifying its file,
// so the age only has to exceed the longest pause inside one write. The
// default is one hour; non-positive values are ignored.
func WithStaleTempAge(age time.Duration) DirOption {
	return func(d *Dir) {
		if age > 0 {
			d.staleTempAge = age
		}
	}
}

// WithMaxEntrySize bounds the length of one entry: Store refuses longer
// data and Load refuses longer files, before reading them, with
// [ErrTooLarge]. The bound is also never above the directory's budget. The
// default is [DefaultMaxEntrySize]; non-positive values select it.
func WithMaxEntrySize(n int64) DirOption {
	return func(d *Dir) {
		if n <= 0 {
			n = DefaultMaxEntrySize
		}
		d.maxEntry = n
	}
}

// withPackSize sets the length past which a writer starts a new pack, so
// tests can fill several.
func withPackSize(n int64) DirOption {
	return func(d *Dir) { d.packSize = n }
}

// withClock replaces the clock that stamps access times and ages
// temporary files, so tests can order accesses without sleeping.
func withClock(now func() time.Time) DirOption {
	return func(d *Dir) { d.now = now }
}

// NewDir opens the directory cache rooted at dir, creating dir if needed,
// and bounds the total size of its entries by maxBytes. Opening scans the
// directory: it removes stale temporary files left by crashed writers and
// evicts entries if the directory is over budget.
func NewDir(dir string, maxBytes int64, opts ...DirOption) (*Dir, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("cache: NewDir %s: maxBytes is %d, must be positive", dir, maxBytes)
	}
	d := &Dir{
		root:         dir,
		maxBytes:     maxBytes,
		maxEntry:     DefaultMaxEntrySize,
		staleTempAge: defaultStaleTempAge,
		packSize:     defaultPackSize,
		now:          time.Now,
		index:        map[digest.Digest]*record{},
		packs:        map[string]*pack{},
	}
	for _, opt := range opts {
		opt(d)
	}
	d.maxEntry = min(d.maxEntry, maxBytes)
	if err := os.MkdirAll(filepath.Join(dir, packDirName), 0o700); err != nil {
		return nil, fmt.Errorf("cache: NewDir: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.scanAndEvict(); err != nil {
		return nil, fmt.Errorf("cache: NewDir: %w", err)
	}
	return d, nil
}

// Get returns the data stored under key if its file exists and matches the
// key; any failure is a miss. The returned slice is the caller's.
func (d *Dir) Get(key digest.Digest) ([]byte, bool) {
	data, err := d.Load(key)
	return data, err == nil
}

// Has reports whether an entry this Dir could load is stored under key:
// a record in its index, or a regular file, of at most the entry bound.
// It neither reads nor hashes the entry, marks it used or counts a
// lookup, so damage is found only by a later Load.
func (d *Dir) Has(key digest.Digest) bool {
	if validateKey(key) != nil {
		return false
	}
	d.idx.Lock()
	r := d.index[key]
	d.idx.Unlock()
	if r != nil {
		return r.n <= d.maxEntry
	}
	info, err := os.Lstat(d.path(key))
	return err == nil && info.Mode().IsRegular() && info.Size() <= d.maxEntry
}

// VerifiesContent reports true: Get hashes every entry it reads.
func (d *Dir) VerifiesContent() bool { return true }

// Add stores data under key; failures are dropped, as a cache may drop any
// entry. Use [Dir.Store] to see them.
func (d *Dir) Add(key digest.Digest, data []byte) {
	_ = d.Store(key, data)
}

// AddVerified is Add without the hash, for data the caller has verified
// to have the digest key (see [VerifiedAdder]).
func (d *Dir) AddVerified(key digest.Digest, data []byte) {
	_ = d.put(key, data, true)
}

// Load returns the data stored under key and marks the entry most recently
// used. It checks what the file is, or the record's length, before
// reading it, so that nothing under the directory can make it block or
// allocate more than the entry bound (see [WithMaxEntrySize]). The error
// wraps [ErrInvalidKey], [ErrNotFound], [ErrTooLarge] (an entry longer
// than this Dir's entry bound, perhaps written by a process with a larger
// one; it is left alone), [ErrCorrupt] (the entry did not match its key,
// or its file was no regular file but a symbolic link, a named pipe or
// the like, and has been removed) or the error of the failed file
// operation.
func (d *Dir) Load(key digest.Digest) ([]byte, error) {
	data, err := d.load(key)
	if err != nil {
		d.misses.Add(1)
		return nil, fmt.Errorf("cache: load %q: %w", key, err)
	}
	d.hits.Add(1)
	return data, nil
}

func (d *Dir) load(key digest.Digest) ([]byte, error) {
	if err := validateKey(key); err != nil {
		return nil, err
	}
	if data, ok, err := d.loadPacked(key); ok {
		return data, err
	}
	path := d.path(key)
	// A Dir creates only regular files. Opening anything else must not
	// block (a named pipe without a writer would, forever) nor follow a
	// link out of the directory: openFlags refuses links and makes the
	// open itself return at once, and the opened file's own Stat decides.
	f, err := os.OpenFile(path, os.O_RDONLY|openFlags, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		if info, lerr := os.Lstat(path); lerr == nil && !info.Mode().IsRegular() {
			return nil, d.notRegular(path, info)
		}
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, d.notRegular(path, info)
	}
	if info.Size() > d.maxEntry {
		return nil, fmt.Errorf("%s has %d bytes, more than %d: %w", path, info.Size(), d.maxEntry, ErrTooLarge)
	}
	data := make([]byte, info.Size())
	_, err = io.ReadFull(f, data)
	if err == nil && key.Algorithm().FromBytes(data) != key {
		err = errors.New("content does not match key")
	}
	if err != nil {
		// Nothing rewrites a published file in place, so a short read is
		// damage too.
		d.verifyFailures.Add(1)
		d.discard(path, info)
		return nil, fmt.Errorf("%s: %v: %w", path, err, ErrCorrupt)
	}
	// The file may have been evicted meanwhile; failing to record the use
	// only makes the LRU order less exact.
	_ = d.touch(path)
	return data, nil
}

// notRegular discards the file at path, which is not a regular file and
// so cannot be an entry, and returns the error Load reports for it.
func (d *Dir) notRegular(path string, info fs.FileInfo) error {
	d.verifyFailures.Add(1)
	d.discard(path, info)
	return fmt.Errorf("%s is not a regular file (mode %v): %w", path, info.Mode().Type(), ErrCorrupt)
}

// Store stores data under key unless it is already present, in which case
// it only marks the entry most recently used. Store hashes data and
// refuses data that does not match key ([ErrDigestMismatch]) rather than
// persist an entry every later lookup would discard. The error wraps
// [ErrInvalidKey], [ErrTooLarge], [ErrDigestMismatch] or the error of the
// failed file operation.
func (d *Dir) Store(key digest.Digest, data []byte) error {
	return d.put(key, data, false)
}

// put is Store, trusting that data matches key if verified.
func (d *Dir) put(key digest.Digest, data []byte, verified bool) error {
	err := validateKey(key)
	if err == nil && int64(len(data)) > d.maxEntry {
		err = fmt.Errorf("%d bytes, at most %d: %w", len(data), d.maxEntry, ErrTooLarge)
	}
	if err == nil && len(data) <= packedEntryMax {
		err = d.storePacked(key, data, verified)
	} else if err == nil {
		err = d.store(key, bytes.NewReader(data), int64(len(data)), verified)
	}
	if err != nil {
		return fmt.Errorf("cache: store %q: %w", key, err)
	}
	if d.bytes.Load() > d.maxBytes {
		d.evict()
	}
	return nil
}

// storePacked appends data to this Dir's pack under key, which must be
// valid, checking that they match unless verified says the caller has.
func (d *Dir) storePacked(key digest.Digest, data []byte, verified bool) error {
	if d.used(key) {
		return nil // already stored: spare the hash
	}
	if !verified {
		if got := key.Algorithm().FromBytes(data); got != key {
			return fmt.Errorf("data has digest %s: %w", got, ErrDigestMismatch)
		}
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.appendEntry(key, data)
}

// store writes the size bytes of r under key, which must be valid,
// checking that they match key unless verified says the caller has. It
// reads r as a stream, so a test can stop a writer midway.
func (d *Dir) store(key digest.Digest, r io.Reader, size int64, verified bool) error {
	path := d.path(key)
	// A file that cannot be the entry (not regular, or of another length)
	// is damage; the rename below replaces it.
	if info, err := os.Lstat(path); err == nil && info.Mode().IsRegular() && info.Size() == size && d.touch(path) == nil {
		return nil // already stored
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	published := false
	defer func() {
		if !published {
			f.Close()
			os.Remove(tmp)
		}
	}()

	var h hash.Hash
	w := io.Writer(f)
	if !verified {
		h = key.Algorithm().Hash()
		w = io.MultiWriter(f, h)
	}
	n, err := io.Copy(w, io.LimitReader(r, d.maxEntry+1))
	if err != nil {
		return err
	}
	if n > d.maxEntry {
		return fmt.Errorf("more than %d bytes: %w", d.maxEntry, ErrTooLarge)
	}
	if h != nil {
		if got := digest.NewDigest(key.Algorithm(), h); got != key {
			return fmt.Errorf("data has digest %s: %w", got, ErrDigestMismatch)
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	now := d.now()
	if err := os.Chtimes(tmp, now, now); err != nil {
		return err
	}

	d.mu.RLock()
	err = os.Rename(tmp, path)
	if err == nil {
		published = true
		d.entries.Add(1)
		d.bytes.Add(n)
	}
	d.mu.RUnlock()
	return err
}

// Stats returns a snapshot of the counters of this Dir. Entries and Bytes
// are its estimate of the directory's content (see [Dir]); Evictions counts
// the entries this Dir removed to stay within budget.
func (d *Dir) Stats() Stats {
	return Stats{
		Hits:           d.hits.Load(),
		Misses:         d.misses.Load(),
		Evictions:      d.evictions.Load(),
		VerifyFailures: d.verifyFailures.Load(),
		Entries:        d.entries.Load(),
		Bytes:          d.bytes.Load(),
	}
}

// validateKey accepts only well-formed digests of algorithms this package
// can compute: their hex part is all a path is built from.
func validateKey(key digest.Digest) error {
	if err := key.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return nil
}

// path returns the file name of a validated key.
func (d *Dir) path(key digest.Digest) string {
	hex := key.Encoded()
	return filepath.Join(d.root, string(key.Algorithm()), hex[:2], hex)
}

// touch marks the file at path as just used.
func (d *Dir) touch(path string) error {
	now := d.now()
	return os.Chtimes(path, now, now)
}

// discard removes the damaged entry file at path, which was opened (or,
// if not a regular file, found) as info, unless another writer has
// meanwhile replaced it with a new file.
func (d *Dir) discard(path string, info fs.FileInfo) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	current, err := os.Lstat(path)
	if err != nil || !os.SameFile(info, current) {
		return
	}
	if os.Remove(path) != nil {
		return
	}
	d.uncount(info)
}

// uncount takes the entry file info, just removed, out of the estimates.
// The caller holds d.mu for reading.
func (d *Dir) uncount(info fs.FileInfo) {
	if !info.Mode().IsRegular() {
		return // scans count only regular files
	}
	// The file may have changed size since it was counted; subtracting the
	// size it has now keeps the estimate at or above the truth, which is the
	// side that still triggers a scan.
	d.uncountEntry(info.Size())
}

// uncountEntry takes an entry of n bytes out of the estimates, never
// taking them below zero.
func (d *Dir) uncountEntry(n int64) {
	d.entries.Add(-1)
	for {
		old := d.bytes.Load()
		if d.bytes.CompareAndSwap(old, max(old-n, 0)) {
			return
		}
	}
}

// Remove removes the entry stored under key, if there is one, freeing its
// space at once: a caller that knows nothing will read an entry again (the
// layers that held it are gone) need not wait for the LRU bound to reclaim
// it. Removing a key that is not stored is not an error. The error wraps
// [ErrInvalidKey] or the error of the failed file operation.
func (d *Dir) Remove(key digest.Digest) error {
	if err := validateKey(key); err != nil {
		return fmt.Errorf("cache: remove %q: %w", key, err)
	}
	path := d.path(key)
	d.mu.RLock()
	defer d.mu.RUnlock()
	d.idx.Lock()
	var removals []removal
	if r := d.index[key]; r != nil {
		removals = append(removals, d.take(key, r))
	}
	d.idx.Unlock()
	d.finish(removals)
	// The entry may also be a file: a large one, or one written by an
	// earlier version of this package.
	info, err := os.Lstat(path)
	if err == nil {
		err = os.Remove(path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil // never stored, or removed meanwhile
	}
	if err != nil {
		return fmt.Errorf("cache: remove %q: %w", key, err)
	}
	d.uncount(info)
	return nil
}

// evict brings the directory back within budget unless another goroutine
// already has.
func (d *Dir) evict() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bytes.Load() <= d.maxBytes {
		return
	}
	// A failed scan leaves the estimate over budget, so the next Store
	// tries again.
	_ = d.scanAndEvict()
}

// diskEntry is an entry file as a scan found it.
type diskEntry struct {
	path string
	info fs.FileInfo
}

// victim is an entry a scan may evict: a file, a packed record, or a
// duplicate record (key is then empty).
type victim struct {
	used time.Time
	size int64
	file *diskEntry
	key  digest.Digest
	rec  *record
}

// compareVictims orders victims least recently used first, ties broken
// by place, so that eviction does not depend on map order.
func compareVictims(a, b victim) int {
	place := func(v victim) (string, int64) {
		if v.rec != nil {
			return v.rec.pack.name, v.rec.off
		}
		return v.file.path, 0
	}
	an, ao := place(a)
	bn, bo := place(b)
	return cmp.Or(a.used.Compare(b.used), strings.Compare(an, bn), cmp.Compare(ao, bo))
}

// scanAndEvict measures the directory, rebuilds the index of packed
// entries, removes stale temporary files, evicts least recently used
// entries while the directory is over budget and resets the estimates to
// what remains. The caller holds d.mu.
func (d *Dir) scanAndEvict() error {
	found, err := d.scan()
	if err != nil {
		return err
	}
	duplicates := d.scanPacks()
	d.idx.Lock()
	var removals []removal
	defer func() { d.finish(removals) }()
	defer d.idx.Unlock()
	var total int64
	count := int64(len(found) + len(d.index) + len(duplicates))
	for _, e := range found {
		total += e.info.Size()
	}
	for _, r := range d.index {
		total += r.n
	}
	for _, r := range duplicates {
		total += r.n
	}
	if total > d.maxBytes {
		victims := make([]victim, 0, count)
		for i, e := range found {
			victims = append(victims, victim{used: e.info.ModTime(), size: e.info.Size(), file: &found[i]})
		}
		for k, r := range d.index {
			victims = append(victims, victim{used: r.used, size: r.n, key: k, rec: r})
		}
		for _, r := range duplicates {
			// Redundant, so first to go.
			victims = append(victims, victim{size: r.n, rec: r})
		}
		slices.SortFunc(victims, compareVictims)
		lowWater := d.maxBytes - d.maxBytes/8
		for _, v := range victims {
			if total <= lowWater {
				break
			}
			switch {
			case v.rec != nil:
				removals = append(removals, d.take(v.key, v.rec))
			case !d.evictFile(*v.file):
				continue
			}
			if v.rec != nil {
				d.evictions.Add(1)
			}
			total -= v.size
			count--
		}
	}
	d.bytes.Store(total)
	d.entries.Store(count)
	return nil
}

// evictFile removes an entry file found by a scan unless, since the scan,
// another process has used it or replaced it. It reports whether the file
// is gone.
func (d *Dir) evictFile(e diskEntry) bool {
	current, err := os.Lstat(e.path)
	if errors.Is(err, fs.ErrNotExist) {
		return true // another process evicted it
	}
	if err != nil || !os.SameFile(e.info, current) || current.ModTime().After(e.info.ModTime()) {
		return false
	}
	err = os.Remove(e.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err == nil {
		d.evictions.Add(1)
	}
	return true
}

// scan lists the entry files under the root and removes stale temporary
// files. Files and directories it does not recognise are left alone, and
// files that vanish while it runs are skipped.
func (d *Dir) scan() ([]diskEntry, error) {
	algDirs, err := os.ReadDir(d.root)
	if err != nil {
		return nil, err
	}
	staleBefore := d.now().Add(-d.staleTempAge)
	var found []diskEntry
	for _, algDir := range algDirs {
		alg := digest.Algorithm(algDir.Name())
		if !algDir.IsDir() || !alg.Available() {
			continue
		}
		algPath := filepath.Join(d.root, algDir.Name())
		shards, err := os.ReadDir(algPath)
		if err != nil {
			continue
		}
		for _, shard := range shards {
			if !shard.IsDir() {
				continue
			}
			shardPath := filepath.Join(algPath, shard.Name())
			files, err := os.ReadDir(shardPath)
			if err != nil {
				continue
			}
			for _, file := range files {
				name := file.Name()
				path := filepath.Join(shardPath, name)
				if strings.HasPrefix(name, tempPrefix) {
					removeIfStale(path, file, staleBefore)
					continue
				}
				if alg.Validate(name) != nil || name[:2] != shard.Name() {
					continue
				}
				info, err := file.Info()
				if err != nil || !info.Mode().IsRegular() {
					continue
				}
				found = append(found, diskEntry{path: path, info: info})
			}
		}
	}
	return found, nil
}

// removeIfStale removes the temporary file at path, listed as de, if it
// was last modified before staleBefore.
func removeIfStale(path string, de fs.DirEntry, staleBefore time.Time) {
	if info, err := de.Info(); err == nil && info.Mode().IsRegular() && info.ModTime().Before(staleBefore) {
		os.Remove(path)
	}
}

// Close closes the pack files this Dir holds open and releases its locks,
// so that other Dirs may delete its pack once it is empty. The Dir must
// not be used afterwards. A Dir that is merely dropped releases them when
// the garbage collector finalizes its files.
func (d *Dir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closePacks()
	return nil
}
