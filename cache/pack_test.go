package cache

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// packFiles returns the paths of the packs under root.
func packFiles(t *testing.T, root string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root, packDirName, "*"+packSuffix))
	require.NoError(t, err)
	return paths
}

// newStoredDir opens a Dir on a new directory with a budget of 1 MiB and
// stores es in it.
func newStoredDir(t *testing.T, es []entry) (root string, d *Dir) {
	t.Helper()
	root = t.TempDir()
	d, err := NewDir(root, 1<<20)
	require.NoError(t, err)
	for _, e := range es {
		require.NoError(t, d.Store(e.key, e.data))
	}
	return root, d
}

// requireEntries checks that d returns the right bytes for want and
// nothing for gone.
func requireEntries(t *testing.T, d *Dir, want, gone []entry) {
	t.Helper()
	for _, e := range want {
		got, err := d.Load(e.key)
		require.NoError(t, err, "entry %s", e.key)
		require.Equal(t, e.data, got)
	}
	for _, e := range gone {
		_, err := d.Load(e.key)
		require.ErrorIs(t, err, ErrNotFound, "entry %s", e.key)
	}
}

func TestDirPacksRotateAndSurviveRestart(t *testing.T) {
	root := t.TempDir()
	d, err := NewDir(root, 1<<20, withPackSize(4096))
	require.NoError(t, err)
	es := newEntries(20, 1000)
	for _, e := range es {
		require.NoError(t, d.Store(e.key, e.data))
	}
	// Three records of 1087 bytes fit in 4096 bytes; the fourth starts a
	// new pack.
	assert.Len(t, packFiles(t, root), 7)
	_, entries, temps := diskState(t, root)
	assert.Len(t, entries, 20)
	assert.Empty(t, temps)
	requireEntries(t, d, es, nil)

	d2, err := NewDir(root, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, Stats{Entries: 20, Bytes: 20_000}, d2.Stats())
	requireEntries(t, d2, es, nil)
}

// TestDirPackDamage damages a pack the ways a disk, a crash or another
// program can and checks that a new Dir reads the records before the
// damage and misses the rest, never returning wrong bytes.
func TestDirPackDamage(t *testing.T) {
	es := newEntries(3, 1000)
	const rec = recordHeaderLen + 71 + 1000 // sha256 keys are 71 bytes
	for name, tc := range map[string]struct {
		damage  func(f *os.File) error
		kept    int  // entries still found
		corrupt bool // the second entry is found damaged
	}{
		"torn tail":   {func(f *os.File) error { return f.Truncate(3*rec - 1) }, 2, false},
		"torn header": {func(f *os.File) error { return f.Truncate(2*rec + 10) }, 2, false},
		"bad magic": {func(f *os.File) error {
			_, err := f.WriteAt([]byte("XXXX"), rec)
			return err
		}, 1, false},
		"unknown flag": {func(f *os.File) error {
			_, err := f.WriteAt([]byte{0x80}, rec+flagsOffset)
			return err
		}, 1, false},
		"zero key length": {func(f *os.File) error {
			_, err := f.WriteAt([]byte{0}, rec+5)
			return err
		}, 1, false},
		"invalid key": {func(f *os.File) error {
			_, err := f.WriteAt([]byte("SHA256"), rec+recordHeaderLen)
			return err
		}, 1, false},
		"huge data length": {func(f *os.File) error {
			_, err := f.WriteAt(binary.BigEndian.AppendUint64(nil, 1<<63), rec+8)
			return err
		}, 1, false},
		"data length past end": {func(f *os.File) error {
			_, err := f.WriteAt(binary.BigEndian.AppendUint64(nil, 2*rec), rec+8)
			return err
		}, 1, false},
		"data length over the record bound": {func(f *os.File) error {
			if err := f.Truncate(3*rec + packedEntryMax); err != nil {
				return err
			}
			_, err := f.WriteAt(binary.BigEndian.AppendUint64(nil, packedEntryMax+1), rec+8)
			return err
		}, 1, false},
		"shorter data length": {func(f *os.File) error {
			// The record now ends inside its data, where the next
			// header is not found.
			_, err := f.WriteAt(binary.BigEndian.AppendUint64(nil, 999), rec+8)
			return err
		}, 1, true},
	} {
		t.Run(name, func(t *testing.T) {
			root, d := newStoredDir(t, es)
			require.NoError(t, d.Close())
			packs := packFiles(t, root)
			require.Len(t, packs, 1)
			f, err := os.OpenFile(packs[0], os.O_RDWR, 0)
			require.NoError(t, err)
			require.NoError(t, tc.damage(f))
			require.NoError(t, f.Close())

			d, err = NewDir(root, 1<<20)
			require.NoError(t, err)
			var failures uint64
			if tc.corrupt {
				_, err := d.Load(es[1].key)
				require.ErrorIs(t, err, ErrCorrupt)
				failures = 1
			}
			requireEntries(t, d, es[:tc.kept], es[tc.kept:])
			st := d.Stats()
			assert.Equal(t, int64(tc.kept), st.Entries)
			assert.Equal(t, int64(tc.kept*1000), st.Bytes)
			assert.Equal(t, failures, st.VerifyFailures)

			// Entries lost to the damage can be stored again.
			for _, e := range es[tc.kept:] {
				require.NoError(t, d.Store(e.key, e.data))
			}
			requireEntries(t, d, es, nil)
		})
	}
}

func TestDirPackFlippedDataIsCorrupt(t *testing.T) {
	for _, restart := range []bool{false, true} {
		es := newEntries(3, 1000)
		root, d := newStoredDir(t, es)
		path, off := packedData(t, d, es[1].key)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		require.NoError(t, err)
		_, err = f.WriteAt([]byte{^es[1].data[500]}, off+500)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		if restart {
			require.NoError(t, d.Close())
			d, err = NewDir(root, 1<<20)
			require.NoError(t, err)
		}

		_, err = d.Load(es[1].key)
		require.ErrorIs(t, err, ErrCorrupt)
		st := d.Stats()
		assert.Equal(t, uint64(1), st.VerifyFailures)
		assert.Equal(t, int64(2), st.Entries)
		assert.Equal(t, int64(2000), st.Bytes)
		// The record is marked removed on disk, so no later scan finds it.
		total, entries, _ := diskState(t, root)
		assert.Equal(t, int64(2000), total)
		assert.Len(t, entries, 2)
		requireEntries(t, d, []entry{es[0], es[2]}, []entry{es[1]})

		require.NoError(t, d.Store(es[1].key, es[1].data), "the entry can be stored again")
		requireEntries(t, d, es, nil)
		d2, err := NewDir(root, 1<<20)
		require.NoError(t, err)
		requireEntries(t, d2, es, nil)
	}
}

// TestDirEvictsLeastRecentlyUsedPackedOrNot checks that eviction orders
// packed entries and files by one recency.
func TestDirEvictsLeastRecentlyUsedPackedOrNot(t *testing.T) {
	root := t.TempDir()
	clock := &fakeClock{now: time.Now().Add(-time.Hour)}
	d, err := NewDir(root, 4<<20, withClock(clock.Now))
	require.NoError(t, err)
	large0, small0 := newEntry(1, packedEntryMax+1), newEntry(2, packedEntryMax)
	large1, small1 := newEntry(3, packedEntryMax+1), newEntry(4, packedEntryMax/2)
	small2 := newEntry(5, packedEntryMax)
	for _, e := range []entry{large0, small0, large1, small1} {
		clock.Advance(time.Second)
		require.NoError(t, d.Store(e.key, e.data))
	}
	for _, e := range []entry{large0, small0} {
		clock.Advance(time.Second)
		_, err := d.Load(e.key)
		require.NoError(t, err)
	}
	require.Zero(t, d.Stats().Evictions)

	// 4.5 MiB: large1 then small1, the least recently used, go.
	clock.Advance(time.Second)
	require.NoError(t, d.Store(small2.key, small2.data))
	st := d.Stats()
	assert.Equal(t, uint64(2), st.Evictions)
	assert.Equal(t, int64(3), st.Entries)
	want := int64(3*packedEntryMax + 1)
	assert.Equal(t, want, st.Bytes)
	total, _, _ := diskState(t, root)
	assert.Equal(t, want, total)
	requireEntries(t, d, []entry{large0, small0, small2}, []entry{large1, small1})
}

func TestDirRemovePacked(t *testing.T) {
	es := newEntries(4, 1000)
	root, d := newStoredDir(t, es)
	require.NoError(t, d.Remove(es[1].key))
	assert.Equal(t, Stats{Entries: 3, Bytes: 3000}, d.Stats())
	total, _, _ := diskState(t, root)
	assert.Equal(t, int64(3000), total)
	requireEntries(t, d, []entry{es[0], es[2], es[3]}, []entry{es[1]})

	// Its own pack stays while the Dir may append to it, even empty.
	for _, e := range es {
		require.NoError(t, d.Remove(e.key))
	}
	assert.Len(t, packFiles(t, root), 1)
	assert.Equal(t, int64(0), d.Stats().Entries)

	// Another Dir deletes an empty pack no writer holds.
	require.NoError(t, d.Store(es[0].key, es[0].data))
	require.NoError(t, d.Close())
	other, err := NewDir(root, 1<<20)
	require.NoError(t, err)
	require.NoError(t, other.Remove(es[0].key))
	assert.Empty(t, packFiles(t, root))
	assert.Equal(t, Stats{}, other.Stats())
}

// TestDirSharedPacks runs two Dirs on one directory, as two processes
// would: neither deletes the pack the other appends to, and an entry one
// removes is a plain miss for the other, not damage.
func TestDirSharedPacks(t *testing.T) {
	root := t.TempDir()
	a, err := NewDir(root, 1<<20)
	require.NoError(t, err)
	x, y := newEntry(1, 1000), newEntry(2, 1000)
	require.NoError(t, a.Store(x.key, x.data))
	b, err := NewDir(root, 1<<20) // sees x at its first scan
	require.NoError(t, err)
	requireEntries(t, b, []entry{x}, nil)

	require.NoError(t, b.Remove(x.key))
	require.Len(t, packFiles(t, root), 1, "b deleted the pack a appends to")
	_, err = a.Load(x.key)
	require.ErrorIs(t, err, ErrNotFound)
	assert.Zero(t, a.Stats().VerifyFailures, "an entry another Dir removed counted as damage")
	assert.Equal(t, int64(0), a.Stats().Entries)

	require.NoError(t, a.Store(y.key, y.data))
	c, err := NewDir(root, 1<<20)
	require.NoError(t, err)
	requireEntries(t, c, []entry{y}, []entry{x})

	// Both stored y. A scan counts both records and, over budget, evicts
	// the redundant one first.
	require.NoError(t, b.Store(y.key, y.data))
	require.Len(t, packFiles(t, root), 2)
	c, err = NewDir(root, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, Stats{Entries: 2, Bytes: 2000}, c.Stats())
	requireEntries(t, c, []entry{y}, nil)
	c, err = NewDir(root, 1999)
	require.NoError(t, err)
	assert.Equal(t, Stats{Entries: 1, Bytes: 1000, Evictions: 1}, c.Stats())
	_, entries, _ := diskState(t, root)
	assert.Len(t, entries, 1)
	requireEntries(t, c, []entry{y}, nil)
}

// TestDirConcurrentRemove mixes stores, loads, removals and evictions,
// over packs that fill, rotate and empty, for the race detector.
func TestDirConcurrentRemove(t *testing.T) {
	root := t.TempDir()
	es := newEntries(64, 700)
	d, err := NewDir(root, 16*700, withPackSize(4096))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			for range 300 {
				e := es[rng.IntN(len(es))]
				switch rng.IntN(4) {
				case 0:
					assert.NoError(t, d.Remove(e.key))
				case 1:
					got, err := d.Load(e.key)
					if err != nil {
						assert.ErrorIs(t, err, ErrNotFound)
					} else {
						assert.Equal(t, e.data, got)
					}
				default:
					assert.NoError(t, d.Store(e.key, e.data))
				}
			}
		})
	}
	wg.Wait()
	st := d.Stats()
	assert.Zero(t, st.VerifyFailures)
	assert.NotZero(t, st.Evictions)
	total, entries, temps := diskState(t, root)
	assert.LessOrEqual(t, total, int64(16*700))
	assert.Equal(t, total, st.Bytes)
	assert.Len(t, entries, int(st.Entries))
	assert.Empty(t, temps)
}

func TestDirHasNeitherCountsNorTouches(t *testing.T) {
	root := t.TempDir()
	clock := &fakeClock{now: time.Now().Add(-time.Hour)}
	d, err := NewDir(root, 4<<20, withClock(clock.Now))
	require.NoError(t, err)
	packed0, packed1 := newEntry(1, packedEntryMax), newEntry(2, packedEntryMax)
	loose, absent := newEntry(3, packedEntryMax+1), newEntry(4, 100)
	for _, e := range []entry{packed0, packed1, loose} {
		clock.Advance(time.Second)
		require.NoError(t, d.Store(e.key, e.data))
	}
	before, err := os.Stat(d.path(loose.key))
	require.NoError(t, err)
	clock.Advance(time.Second)
	for _, e := range []entry{packed0, packed1, loose} {
		assert.True(t, Has(d, e.key))
	}
	assert.False(t, d.Has(absent.key))
	assert.False(t, d.Has("sha256:../x"))
	assert.Equal(t, Stats{Entries: 3, Bytes: 3*packedEntryMax + 1}, d.Stats(), "Has counted a lookup")
	after, err := os.Stat(d.path(loose.key))
	require.NoError(t, err)
	assert.Equal(t, before.ModTime(), after.ModTime(), "Has touched a file")

	// Has did not make packed0 recently used: storing 1 MiB more evicts it.
	clock.Advance(time.Second)
	more := newEntry(5, packedEntryMax)
	require.NoError(t, d.Store(more.key, more.data))
	assert.False(t, d.Has(packed0.key))
	assert.True(t, d.Has(packed1.key))

	// An entry over this Dir's bound is one it cannot load.
	small, err := NewDir(root, 4<<20, WithMaxEntrySize(1000))
	require.NoError(t, err)
	assert.False(t, small.Has(packed1.key))
	assert.False(t, small.Has(loose.key))
}
