package cache

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// diskState walks a cache directory and returns the total length of its
// entries, where they are (the path of a file, or a pack's path, "@" and
// the offset of a record) and the paths of temporary files.
func diskState(t *testing.T, root string) (total int64, entries, temps []string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		if strings.HasPrefix(de.Name(), tempPrefix) {
			temps = append(temps, path)
			return nil
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		if filepath.Base(filepath.Dir(path)) != packDirName {
			total += info.Size()
			entries = append(entries, path)
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		readRecords(f, info.Size(), func(h recordHeader) {
			if h.flags&flagRemoved == 0 {
				total += h.n
				entries = append(entries, fmt.Sprintf("%s@%d", path, h.off))
			}
		})
		return nil
	})
	require.NoError(t, err)
	return total, entries, temps
}

// packedData returns the pack and the offset of the data of key's record.
func packedData(t *testing.T, d *Dir, key digest.Digest) (path string, off int64) {
	t.Helper()
	d.idx.Lock()
	defer d.idx.Unlock()
	r := d.index[key]
	require.NotNil(t, r, "%s is not packed", key)
	return d.packPath(r.pack.name), r.dataOff()
}

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestDirRoundTrip(t *testing.T) {
	root := t.TempDir()
	d, err := NewDir(root, 4<<20)
	require.NoError(t, err)
	small, large := newEntry(1, 1000), newEntry(2, packedEntryMax+1)
	size := int64(len(small.data) + len(large.data))

	for _, e := range []entry{small, large} {
		_, err = d.Load(e.key)
		require.ErrorIs(t, err, ErrNotFound)
		require.NoError(t, d.Store(e.key, e.data))
		require.NoError(t, d.Store(e.key, e.data), "storing an existing entry again")
		got, err := d.Load(e.key)
		require.NoError(t, err)
		assert.Equal(t, e.data, got)
	}

	// The small entry is a record in a pack, the large one a file at its
	// content address.
	packPath, _ := packedData(t, d, small.key)
	hex := large.key.Encoded()
	largePath := filepath.Join(root, "sha256", hex[:2], hex)
	total, entries, temps := diskState(t, root)
	assert.Equal(t, size, total)
	assert.ElementsMatch(t, []string{packPath + "@0", largePath}, entries)
	assert.Empty(t, temps)
	assert.Equal(t, Stats{Hits: 2, Misses: 2, Entries: 2, Bytes: size}, d.Stats())

	// A new Dir on the same directory finds both.
	d2, err := NewDir(root, 4<<20)
	require.NoError(t, err)
	assert.Equal(t, Stats{Entries: 2, Bytes: size}, d2.Stats())
	for _, e := range []entry{small, large} {
		got, ok := d2.Get(e.key)
		require.True(t, ok)
		assert.Equal(t, e.data, got)
	}
}

func TestDirRemove(t *testing.T) {
	root := t.TempDir()
	d, err := NewDir(root, 1<<20)
	require.NoError(t, err)
	kept, gone := newEntry(1, 1000), newEntry(2, 300)
	require.NoError(t, d.Store(kept.key, kept.data))
	require.NoError(t, d.Store(gone.key, gone.data))

	require.NoError(t, d.Remove(gone.key))
	_, err = d.Load(gone.key)
	assert.ErrorIs(t, err, ErrNotFound)
	total, entries, _ := diskState(t, root)
	assert.Equal(t, int64(1000), total)
	assert.Len(t, entries, 1)
	st := d.Stats()
	assert.Equal(t, int64(1), st.Entries)
	assert.Equal(t, int64(1000), st.Bytes)

	assert.NoError(t, d.Remove(gone.key), "removing an absent entry")
	assert.ErrorIs(t, d.Remove("sha256:../x"), ErrInvalidKey)
	got, err := d.Load(kept.key)
	require.NoError(t, err)
	assert.Equal(t, kept.data, got)
}

func TestDirOtherAlgorithms(t *testing.T) {
	d, err := NewDir(t.TempDir(), 1<<20)
	require.NoError(t, err)
	data := []byte("not only sha256")
	for _, alg := range []digest.Algorithm{digest.SHA384, digest.SHA512} {
		key := alg.FromBytes(data)
		require.NoError(t, d.Store(key, data))
		got, err := d.Load(key)
		require.NoError(t, err)
		assert.Equal(t, data, got)
	}
}

func TestDirRejectsInvalidKeys(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "cache")
	d, err := NewDir(root, 1<<20)
	require.NoError(t, err)
	data := []byte("x")
	for _, key := range []digest.Digest{
		"",
		"sha256",
		"sha256:",
		"sha256:../../../../escape",
		"sha256:" + digest.Digest(strings.Repeat("../", 21)) + "a",
		digest.Digest(strings.ToUpper(string(digest.FromBytes(data)))),
		"sha256:" + digest.Digest(strings.Repeat("A", 64)),
		"sha256:abc",
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		"../sha256:" + digest.Digest(strings.Repeat("a", 64)),
	} {
		assert.ErrorIs(t, d.Store(key, data), ErrInvalidKey, "Store(%q)", key)
		_, err := d.Load(key)
		assert.ErrorIs(t, err, ErrInvalidKey, "Load(%q)", key)
		d.Add(key, data)
		_, ok := d.Get(key)
		assert.False(t, ok, "Get(%q)", key)
	}
	names, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Len(t, names, 1, "files were created outside the cache directory")
	_, entries, temps := diskState(t, root)
	assert.Empty(t, entries)
	assert.Empty(t, temps)
}

func TestDirStoreRejectsDataNotMatchingKey(t *testing.T) {
	root := t.TempDir()
	d, err := NewDir(root, 1<<20)
	require.NoError(t, err)
	e := newEntry(1, 100)
	err = d.Store(e.key, append([]byte("extra"), e.data...))
	require.ErrorIs(t, err, ErrDigestMismatch)
	_, entries, temps := diskState(t, root)
	assert.Empty(t, entries)
	assert.Empty(t, temps, "a failed Store must remove its temporary file")
}

func TestDirDoesNotStoreEntryLargerThanCache(t *testing.T) {
	for name, tc := range map[string]struct {
		budget int64
		opts   []DirOption
	}{
		"budget":      {100, nil},
		"entry bound": {1 << 20, []DirOption{WithMaxEntrySize(100)}},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			d, err := NewDir(root, tc.budget, tc.opts...)
			require.NoError(t, err)
			big := newEntry(1, 101)
			require.ErrorIs(t, d.Store(big.key, big.data), ErrTooLarge)
			_, entries, temps := diskState(t, root)
			assert.Empty(t, entries)
			assert.Empty(t, temps)

			whole := newEntry(2, 100)
			require.NoError(t, d.Store(whole.key, whole.data))
			_, ok := d.Get(whole.key)
			assert.True(t, ok, "an entry of exactly the bound fits")
		})
	}
}

func TestDirRejectsNonPositiveBudget(t *testing.T) {
	_, err := NewDir(t.TempDir(), 0)
	assert.Error(t, err)
}

// TestDirDamagedFileIsMissAndRemoved damages a stored file in the ways a
// disk or a crash can and checks that the damage is never returned.
func TestDirDamagedFileIsMissAndRemoved(t *testing.T) {
	e := newEntry(1, packedEntryMax+1000)
	for name, damage := range map[string]func(path string) error{
		"flipped byte": func(path string) error {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte{0xff ^ e.data[500]}, 500)
			return err
		},
		"truncated": func(path string) error { return os.Truncate(path, int64(len(e.data)-1)) },
		"empty":     func(path string) error { return os.Truncate(path, 0) },
		"extended": func(path string) error {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write([]byte("tail"))
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			d, err := NewDir(root, 4<<20)
			require.NoError(t, err)
			require.NoError(t, d.Store(e.key, e.data))
			_, entries, _ := diskState(t, root)
			require.Len(t, entries, 1)
			require.NoError(t, damage(entries[0]))

			got, err := d.Load(e.key)
			require.ErrorIs(t, err, ErrCorrupt)
			assert.Nil(t, got)
			_, err = os.Stat(entries[0])
			assert.ErrorIs(t, err, fs.ErrNotExist, "damaged file not removed")
			st := d.Stats()
			assert.Equal(t, uint64(1), st.VerifyFailures)
			assert.Equal(t, uint64(1), st.Misses)
			assert.Equal(t, int64(0), st.Entries)
			assert.GreaterOrEqual(t, st.Bytes, int64(0))

			_, err = d.Load(e.key)
			assert.ErrorIs(t, err, ErrNotFound)
			require.NoError(t, d.Store(e.key, e.data), "the entry can be stored again")
			got, ok := d.Get(e.key)
			require.True(t, ok)
			assert.Equal(t, e.data, got)
		})
	}
}

func TestDirFileOverBudgetIsMissButKept(t *testing.T) {
	root := t.TempDir()
	big := newEntry(1, packedEntryMax+1)
	generous, err := NewDir(root, 4<<20)
	require.NoError(t, err)
	require.NoError(t, generous.Store(big.key, big.data))

	// A process with a smaller budget neither reads the file into memory
	// nor destroys another process's valid entry, though it may evict it.
	d := &Dir{root: root, maxBytes: 100, maxEntry: 100, staleTempAge: defaultStaleTempAge, now: time.Now}
	_, err = d.Load(big.key)
	require.ErrorIs(t, err, ErrTooLarge)
	assert.Zero(t, d.Stats().VerifyFailures)
	_, ok := generous.Get(big.key)
	assert.True(t, ok)
}

// TestDirHugeFileIsNotRead plants a 4 GiB sparse file (no disk blocks) at
// an entry's path, under a budget that admits it. Load must refuse it by
// its length, before reading or allocating any of it.
func TestDirHugeFileIsNotRead(t *testing.T) {
	d, err := NewDir(t.TempDir(), 8<<30)
	require.NoError(t, err)
	e := newEntry(1, packedEntryMax+1)
	require.NoError(t, d.Store(e.key, e.data))
	path := d.path(e.key)
	require.NoError(t, os.Truncate(path, 4<<30))

	got, err := d.Load(e.key)
	require.ErrorIs(t, err, ErrTooLarge)
	assert.Nil(t, got)
	assert.Equal(t, uint64(1), d.Stats().Misses)
}

// TestDirEntryTooLargeForOneDirIsLeftToOthers checks that a Dir with a
// smaller entry bound neither reads nor removes a larger entry, packed or
// not, that a Dir with a larger bound stored.
func TestDirEntryTooLargeForOneDirIsLeftToOthers(t *testing.T) {
	root := t.TempDir()
	generous, err := NewDir(root, 4<<20, WithMaxEntrySize(-1))
	require.NoError(t, err)
	packed, loose := newEntry(1, 101), newEntry(2, packedEntryMax+1)
	for _, e := range []entry{packed, loose} {
		require.NoError(t, generous.Store(e.key, e.data))
	}
	// Opened after the stores: a Dir sees another's packed entries at
	// its next scan.
	d, err := NewDir(root, 4<<20, WithMaxEntrySize(100))
	require.NoError(t, err)
	for _, e := range []entry{packed, loose} {
		_, err = d.Load(e.key)
		require.ErrorIs(t, err, ErrTooLarge)
		_, ok := generous.Get(e.key)
		assert.True(t, ok)
	}
	assert.Zero(t, d.Stats().VerifyFailures)
}

func TestDirEvictsLeastRecentlyUsed(t *testing.T) {
	root := t.TempDir()
	clock := &fakeClock{now: time.Now().Add(-time.Hour)}
	d, err := NewDir(root, 4000, withClock(clock.Now))
	require.NoError(t, err)
	es := newEntries(5, 1000)
	for _, e := range es[:4] {
		clock.Advance(time.Second)
		require.NoError(t, d.Store(e.key, e.data))
	}
	clock.Advance(time.Second)
	_, ok := d.Get(es[0].key) // es[1] is now the least recently used
	require.True(t, ok)
	clock.Advance(time.Second)
	require.NoError(t, d.Store(es[2].key, es[2].data)) // storing again counts as a use
	require.Equal(t, uint64(0), d.Stats().Evictions)

	// 5000 bytes: eviction brings the cache below 7/8 of 4000 bytes, so
	// the two least recently used entries (es[1], es[3]) go.
	clock.Advance(time.Second)
	require.NoError(t, d.Store(es[4].key, es[4].data))
	st := d.Stats()
	assert.Equal(t, uint64(2), st.Evictions)
	assert.Equal(t, int64(3), st.Entries)
	assert.Equal(t, int64(3000), st.Bytes)
	for i, want := range []bool{true, false, true, false, true} {
		_, ok := d.Get(es[i].key)
		assert.Equal(t, want, ok, "entry %d present", i)
	}
	total, _, _ := diskState(t, root)
	assert.Equal(t, int64(3000), total)
}

func TestDirStaysWithinBudget(t *testing.T) {
	root := t.TempDir()
	const budget = 10_000
	d, err := NewDir(root, budget)
	require.NoError(t, err)
	for i, e := range newEntries(50, 700) {
		require.NoError(t, d.Store(e.key, e.data))
		total, _, _ := diskState(t, root)
		require.LessOrEqual(t, total, int64(budget), "after store %d", i)
		require.Equal(t, total, d.Stats().Bytes, "estimate after store %d", i)
	}
	assert.NotZero(t, d.Stats().Evictions)

	// Reopened with a smaller budget, the directory shrinks at once.
	small, err := NewDir(root, 3000)
	require.NoError(t, err)
	total, _, _ := diskState(t, root)
	assert.LessOrEqual(t, total, int64(3000))
	assert.Equal(t, total, small.Stats().Bytes)
}

func TestDirLeavesForeignFilesAlone(t *testing.T) {
	root := t.TempDir()
	foreign := []string{
		filepath.Join(root, "README"),
		filepath.Join(root, "md5", "ab", "abcdef"),
		filepath.Join(root, "sha256", "notes.txt"),
		filepath.Join(root, "sha256", "ab", "not-a-digest"),
		// A valid name in the wrong shard is not at its content address.
		filepath.Join(root, "sha256", "00", strings.Repeat("a", 64)),
	}
	for _, path := range foreign {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
		require.NoError(t, os.WriteFile(path, make([]byte, 5000), 0o600))
	}
	d, err := NewDir(root, 1000)
	require.NoError(t, err)
	assert.Equal(t, Stats{}, d.Stats(), "foreign files counted as entries")
	for _, e := range newEntries(5, 300) {
		require.NoError(t, d.Store(e.key, e.data))
	}
	for _, path := range foreign {
		_, err := os.Stat(path)
		assert.NoError(t, err, "foreign file %s removed", path)
	}
}

// crashEnv names the environment variable that turns
// TestDirCrashHelper into the writer TestDirCrashMidWrite kills.
const crashEnv = "LAZYLAYER_CACHE_CRASH_DIR"

// crashEntry is what the killed writer was storing.
var crashEntry = newEntry(42, 1<<20)

// stallingReader yields the first half of the crash entry, announces on
// stdout that the half has been written and blocks forever.
type stallingReader struct {
	rest []byte
	half int
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if len(r.rest) <= r.half {
		fmt.Println("half written")
		select {}
	}
	n := copy(p, r.rest[:len(r.rest)-r.half])
	r.rest = r.rest[n:]
	return n, nil
}

// TestDirCrashHelper is not a test on its own: TestDirCrashMidWrite runs
// the test binary again with crashEnv set, and this function then plays a
// writer that stalls halfway through an entry until it is killed.
func TestDirCrashHelper(t *testing.T) {
	root := os.Getenv(crashEnv)
	if root == "" {
		t.Skip("only run as a child of TestDirCrashMidWrite")
	}
	d, err := NewDir(root, 1<<30)
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	data := crashEntry.data
	_ = d.store(crashEntry.key, &stallingReader{rest: data, half: len(data) / 2}, int64(len(data)), false)
	os.Exit(3) // unreachable: the reader never finishes
}

func TestDirCrashMidWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	root := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestDirCrashHelper$")
	child.Env = append(os.Environ(), crashEnv+"="+root)
	child.Stderr = os.Stderr
	stdout, err := child.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, child.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			child.Process.Kill()
			child.Wait()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "child output: %q", line)
	require.Equal(t, "half written\n", line)

	_, entries, temps := diskState(t, root)
	require.Empty(t, entries, "an entry is visible before its write finished")
	require.Len(t, temps, 1)
	info, err := os.Stat(temps[0])
	require.NoError(t, err)
	require.Equal(t, int64(len(crashEntry.data)/2), info.Size())

	require.NoError(t, child.Process.Kill()) // SIGKILL: no deferred cleanup runs
	_ = child.Wait()
	killed = true
	io.Copy(io.Discard, stdout)

	// Reopened right after the crash: a miss, and the temporary file is
	// kept, since its writer could as well be alive and slow.
	d, err := NewDir(root, 1<<30)
	require.NoError(t, err)
	_, err = d.Load(crashEntry.key)
	require.ErrorIs(t, err, ErrNotFound)
	_, _, temps = diskState(t, root)
	require.Len(t, temps, 1, "a fresh temporary file was removed")

	// Once the temporary file is older than the stale age, opening the
	// cache removes it.
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(temps[0], old, old))
	d, err = NewDir(root, 1<<30, WithStaleTempAge(time.Hour))
	require.NoError(t, err)
	_, _, temps = diskState(t, root)
	assert.Empty(t, temps, "stale temporary file not cleaned up")
	_, ok := d.Get(crashEntry.key)
	assert.False(t, ok)
	assert.Equal(t, Stats{Misses: 1}, d.Stats())

	// The entry can now be written whole.
	require.NoError(t, d.Store(crashEntry.key, crashEntry.data))
	got, ok := d.Get(crashEntry.key)
	require.True(t, ok)
	assert.Equal(t, crashEntry.data, got)
}

func TestDirConcurrent(t *testing.T) {
	root := t.TempDir()
	entries := newEntries(32, 512)
	d, err := NewDir(root, 16*512)
	require.NoError(t, err)
	gets := hammer(t, d, entries, 100)

	st := d.Stats()
	assert.Equal(t, gets, st.Hits+st.Misses)
	assert.Zero(t, st.VerifyFailures)
	assert.NotZero(t, st.Evictions)
	total, _, temps := diskState(t, root)
	assert.LessOrEqual(t, total, int64(16*512))
	assert.Empty(t, temps)
}

// TestDirSharedDirectory runs two Dirs on one directory, as two processes
// would, each adding, getting and evicting concurrently.
func TestDirSharedDirectory(t *testing.T) {
	root := t.TempDir()
	const budget = 16 * 512
	entries := newEntries(48, 512)
	a, err := NewDir(root, budget)
	require.NoError(t, err)
	b, err := NewDir(root, budget)
	require.NoError(t, err)

	var wg sync.WaitGroup
	wg.Go(func() { hammer(t, a, entries, 60) })
	wg.Go(func() { hammer(t, b, entries, 60) })
	wg.Wait()

	for _, d := range []*Dir{a, b} {
		st := d.Stats()
		assert.Zero(t, st.VerifyFailures, "one Dir saw a partial write of the other")
		assert.NotZero(t, st.Evictions)
	}
	_, _, temps := diskState(t, root)
	assert.Empty(t, temps)
	// Each Dir counts only its own writes between scans, so the directory
	// may be over budget now; the next scan corrects it.
	c, err := NewDir(root, budget)
	require.NoError(t, err)
	total, files, _ := diskState(t, root)
	assert.LessOrEqual(t, total, int64(budget))
	assert.Equal(t, total, c.Stats().Bytes)
	hits := 0
	for _, e := range entries {
		got, err := c.Load(e.key)
		if err == nil {
			hits++
			assert.Equal(t, e.data, got)
		} else {
			assert.ErrorIs(t, err, ErrNotFound)
		}
	}
	assert.Len(t, files, hits)
}
