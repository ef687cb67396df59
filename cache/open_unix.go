//go:build unix

package cache

import "syscall"

// openFlags makes opening an entry refuse a symbolic link and return at
// once for a named pipe, which a plain open would wait on for a writer.
const openFlags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK
