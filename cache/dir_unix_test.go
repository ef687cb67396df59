//go:build unix

package cache

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDirNonRegularEntryIsMissAndRemoved puts at an entry's path what a
// Dir never writes there. Load must neither block on a named pipe nor
// follow a link; it reports the damage, removes the file (never a link's
// target) and lets the entry be stored again.
func TestDirNonRegularEntryIsMissAndRemoved(t *testing.T) {
	e := newEntry(1, 1000)
	for name, plant := range map[string]func(t *testing.T, path string){
		"named pipe": func(t *testing.T, path string) {
			require.NoError(t, syscall.Mkfifo(path, 0o600))
		},
		"link to named pipe": func(t *testing.T, path string) {
			fifo := filepath.Join(t.TempDir(), "fifo")
			require.NoError(t, syscall.Mkfifo(fifo, 0o600))
			require.NoError(t, os.Symlink(fifo, path))
		},
		"link to the right bytes": func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "outside")
			require.NoError(t, os.WriteFile(target, e.data, 0o600))
			require.NoError(t, os.Symlink(target, path))
		},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			d, err := NewDir(root, 1<<20)
			require.NoError(t, err)
			other := newEntry(2, 500)
			require.NoError(t, d.Store(other.key, other.data))
			path := d.path(e.key)
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
			plant(t, path)
			target, _ := os.Readlink(path)

			_, err = d.Load(e.key)
			require.ErrorIs(t, err, ErrCorrupt)
			st := d.Stats()
			assert.Equal(t, uint64(1), st.VerifyFailures)
			assert.Equal(t, int64(1), st.Entries, "removing an uncounted file changed the estimate")
			assert.Equal(t, int64(500), st.Bytes)
			_, err = os.Lstat(path)
			assert.ErrorIs(t, err, fs.ErrNotExist, "non-regular file not removed")
			if target != "" {
				_, err = os.Lstat(target)
				assert.NoError(t, err, "the link's target was removed")
			}

			require.NoError(t, d.Store(e.key, e.data))
			got, err := d.Load(e.key)
			require.NoError(t, err)
			assert.Equal(t, e.data, got)
		})
	}
}

// TestDirStoreReplacesNonEntry checks that Store does not take a file that
// cannot be the entry for the entry itself.
func TestDirStoreReplacesNonEntry(t *testing.T) {
	e := newEntry(1, packedEntryMax+1) // files hold only large entries
	for name, plant := range map[string]func(path string) error{
		"named pipe": func(path string) error { return syscall.Mkfifo(path, 0o600) },
		"short file": func(path string) error { return os.WriteFile(path, e.data[:10], 0o600) },
	} {
		t.Run(name, func(t *testing.T) {
			d, err := NewDir(t.TempDir(), 4<<20)
			require.NoError(t, err)
			path := d.path(e.key)
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
			require.NoError(t, plant(path))
			require.NoError(t, d.Store(e.key, e.data))
			got, err := d.Load(e.key)
			require.NoError(t, err)
			assert.Equal(t, e.data, got)
		})
	}
}
