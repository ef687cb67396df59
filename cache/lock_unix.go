//go:build unix

package cache

import (
	"os"
	"syscall"
)

// lockShared takes a shared lock on f, as a pack's writer does.
func lockShared(f *os.File) error { return flock(f, syscall.LOCK_SH) }

// tryLockExclusive takes an exclusive lock on f without waiting and
// reports whether it got it: only then does no writer hold the pack. The
// lock lasts until f is closed.
func tryLockExclusive(f *os.File) bool { return flock(f, syscall.LOCK_EX|syscall.LOCK_NB) == nil }

// unlock releases the lock this process holds on f.
func unlock(f *os.File) { _ = flock(f, syscall.LOCK_UN) }

func flock(f *os.File, how int) error {
	c, err := f.SyscallConn()
	if err != nil {
		return err
	}
	cerr := c.Control(func(fd uintptr) {
		for {
			err = syscall.Flock(int(fd), how)
			if err != syscall.EINTR {
				return
			}
		}
	})
	if cerr != nil {
		return cerr
	}
	return err
}
