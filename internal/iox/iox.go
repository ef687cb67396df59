package iox

import (
	"context"
	"io"
	"io/fs"
	"os"
)

// A CountingWriter writes to W and counts in N the bytes written. The zero
// value discards nothing: W must be set.
type CountingWriter struct {
	W io.Writer
	N int64
}

func (c *CountingWriter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += int64(n)
	return n, err
}

// A CountingReader reads from R and counts in N the bytes read. The zero
// value reads nothing: R must be set.
type CountingReader struct {
	R io.Reader
	N int64
}

func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	return n, err
}

// AllZero reports whether b holds only zero bytes.
func AllZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// ContextReader returns a reader of r that fails with ctx's error once
// ctx is done, checked before each read, so that a long copy stops.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// NextEntries serves fs.ReadDirFile.ReadDir(n) from the entries a
// directory has not handed out yet, which it advances: all of them for
// n <= 0, else at most n, and io.EOF once none are left.
func NextEntries(pending *[]fs.DirEntry, n int) ([]fs.DirEntry, error) {
	all := *pending
	if n <= 0 {
		*pending = nil
		return all, nil
	}
	if len(all) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(all))
	*pending = all[n:]
	return all[:n:n], nil
}

// ReplaceFile replaces the file at path with what write writes, through
// path+".tmp" and a rename, so that a reader of path never sees a file in
// part. On error nothing is left at path+".tmp" and path is unchanged.
func ReplaceFile(path string, write func(io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
