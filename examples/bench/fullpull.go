package main

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/gzip"
)

// fullPull is the baseline every lazy mode is compared with: download the
// whole gzip layer, gunzip and untar it to disk, then read the trace's
// files from disk. Like a good puller it streams: the download runs ahead
// into a buffer while the decompressor and the extractor consume it.
//
// Stages: open (request to response headers), fetch (headers to the last
// byte), decompress (CPU time in gunzip), untar (parsing and writing files)
// and read. Fetch overlaps decompress and untar.
func fullPull(ctx context.Context, env *Env) (Result, error) {
	dest, err := env.ScratchDir("full-pull-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dest)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	clock := env.StartClock()
	req, err := http.NewRequestWithContext(ctx, "GET", env.BlobURL(env.Gzip.Digest), nil)
	if err != nil {
		return Result{}, err
	}
	resp, err := env.Client.Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("full pull: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Result{}, fmt.Errorf("full pull: GET blob: %s", resp.Status)
	}
	open := clock.Elapsed()

	// The download runs ahead of extraction by up to 16 MiB, as the
	// socket and a puller's buffers let it.
	chunks := make(chan []byte, 256)
	downloaded := make(chan error, 1)
	var fetchEnd time.Duration
	go func() {
		defer close(chunks)
		// Like containerd, check the blob's digest as it streams in.
		verifier := env.Gzip.Digest.Verifier()
		for {
			buf := make([]byte, 64<<10)
			n, err := io.ReadFull(resp.Body, buf)
			verifier.Write(buf[:n])
			if n > 0 {
				select {
				case chunks <- buf[:n]:
				case <-ctx.Done():
					downloaded <- ctx.Err()
					return
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				fetchEnd = clock.Elapsed()
				if !verifier.Verified() {
					err = fmt.Errorf("full pull: blob does not match its digest %s", env.Gzip.Digest)
				} else {
					err = nil
				}
				downloaded <- err
				return
			}
			if err != nil {
				downloaded <- fmt.Errorf("full pull: download: %w", err)
				return
			}
		}
	}()

	network := &timedReader{r: &chanReader{ch: chunks}}
	extractStart := time.Now()
	zr, err := gzip.NewReader(network)
	if err != nil {
		return Result{}, fmt.Errorf("full pull: gunzip: %w", err)
	}
	gunzipped := &timedReader{r: zr}
	if err := untar(gunzipped, dest); err != nil {
		return Result{}, fmt.Errorf("full pull: %w", err)
	}
	// Past the tar's end lies the gzip trailer, whose CRC completes the
	// check of the decompressed stream.
	if _, err := io.Copy(io.Discard, gunzipped); err != nil {
		return Result{}, fmt.Errorf("full pull: gunzip: %w", err)
	}
	extract := time.Since(extractStart)
	if err := <-downloaded; err != nil {
		return Result{}, err
	}

	readStart := time.Now()
	if _, err := readTrace(os.DirFS(dest), env.Trace); err != nil {
		return Result{}, fmt.Errorf("full pull: %w", err)
	}
	read := time.Since(readStart)

	return clock.Result(
		Stage{"open", open},
		Stage{"fetch", fetchEnd - open},
		Stage{"decompress", gunzipped.busy - network.busy},
		Stage{"untar", extract - gunzipped.busy},
		Stage{"read", read},
	), nil
}

// untar extracts the tar stream r into the empty directory dest as a
// careful puller does, without following anything out of dest: names must
// be local paths, no entry may lie under a symlink the stream created, and
// files are created exclusively, so neither a symlink nor a duplicate
// entry is ever written through. Regular files, directories and symlinks
// are created; other kinds are skipped.
func untar(r io.Reader, dest string) error {
	tr := tar.NewReader(r)
	buf := make([]byte, 256<<10)
	dirs := map[string]bool{".": true} // directories known to exist
	symlinks := make(map[string]bool)
	mkdirAll := func(dir string, perm fs.FileMode) error {
		if dirs[dir] {
			return nil
		}
		if err := os.MkdirAll(filepath.Join(dest, filepath.FromSlash(dir)), perm); err != nil {
			return err
		}
		dirs[dir] = true
		return nil
	}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("untar: %w", err)
		}
		name := path.Clean(hdr.Name)
		if name == "." {
			continue
		}
		if !fs.ValidPath(name) {
			return fmt.Errorf("untar: entry %q: not a local path", hdr.Name)
		}
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if symlinks[dir] {
				return fmt.Errorf("untar: entry %q: lies under the symlink %q", hdr.Name, dir)
			}
		}
		if err := mkdirAll(path.Dir(name), 0o755); err != nil {
			return fmt.Errorf("untar: %w", err)
		}
		target := filepath.Join(dest, filepath.FromSlash(name))
		perm := hdr.FileInfo().Mode().Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = mkdirAll(name, perm|0o700)
		case tar.TypeReg:
			err = writeFile(target, perm|0o600, tr, buf)
		case tar.TypeSymlink:
			err = os.Symlink(hdr.Linkname, target)
			symlinks[name] = true
		}
		if err != nil {
			return fmt.Errorf("untar: entry %q: %w", hdr.Name, err)
		}
	}
}

func writeFile(name string, perm fs.FileMode, r io.Reader, buf []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm) // O_EXCL: never through a symlink
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(f, r, buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// chanReader reads the byte slices sent on ch, in order, until ch is
// closed.
type chanReader struct {
	ch   <-chan []byte
	rest []byte
}

func (c *chanReader) Read(p []byte) (int, error) {
	for len(c.rest) == 0 {
		b, ok := <-c.ch
		if !ok {
			return 0, io.EOF
		}
		c.rest = b
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	return n, nil
}

// timedReader adds up the time spent in r's Read calls.
type timedReader struct {
	r    io.Reader
	busy time.Duration
}

func (t *timedReader) Read(p []byte) (int, error) {
	start := time.Now()
	n, err := t.r.Read(p)
	t.busy += time.Since(start)
	return n, err
}
