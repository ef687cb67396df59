package cache

import (
	"os"
	"syscall"
)

// punchHole frees the blocks of the n bytes of f at off, which then read
// as zeros, keeping f's length.
func punchHole(f *os.File, off, n int64) error {
	const punchHoleKeepSize = 0x02 | 0x01 // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
	if n == 0 {
		return nil
	}
	c, err := f.SyscallConn()
	if err != nil {
		return err
	}
	cerr := c.Control(func(fd uintptr) {
		err = syscall.Fallocate(int(fd), punchHoleKeepSize, off, n)
	})
	if cerr != nil {
		return cerr
	}
	return err
}
