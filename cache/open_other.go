//go:build !unix

package cache

// openFlags is empty where the system has no O_NOFOLLOW or O_NONBLOCK;
// Load still refuses what the opened file's Stat says is no regular file.
const openFlags = 0
