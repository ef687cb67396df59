//go:build unix

package layout

import (
	"os"
	"syscall"
)

// openFlags makes opening a blob return at once for a named pipe, which a
// plain open would wait on for a writer.
const openFlags = syscall.O_NONBLOCK

// lockDir takes an exclusive flock on the layout's directory, which
// serialises the updates of index.json of every process and of every open
// file description, so of every Layout of this process too.
func lockDir(root *os.Root) (unlock func(), err error) {
	d, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(d.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		d.Close()
		return nil, &os.PathError{Op: "flock", Path: root.Name(), Err: err}
	}
	return func() { d.Close() }, nil
}
