//go:build !unix

package layout

import "os"

// openFlags is empty where the system has no O_NONBLOCK; a blob's Stat
// still refuses what is no regular file.
const openFlags = 0

// lockDir does nothing where there is no flock: Tag is serialised per
// Layout only.
func lockDir(*os.Root) (unlock func(), err error) { return func() {}, nil }
