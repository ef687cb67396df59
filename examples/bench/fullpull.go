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
// files from disk. Like a good puller it streams, and its three steps run
// concurrently with buffers between them: the download runs ahead of
// gunzip, and gunzip ahead of untar.
//
// Stages: open (request to response headers), fetch (headers to the last
// byte), decompress (CPU time in gunzip), untar (parsing and writing files)
// and read. Fetch, decompress and untar overlap.
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

	// Like containerd, check the blob's digest as it streams in.
	verifier := env.Gzip.Digest.Verifier()
	download := startPipe(ctx, io.TeeReader(resp.Body, verifier))
	network := &timedReader{r: download}
	extractStart := time.Now()
	zr, err := gzip.NewReader(network)
	if err != nil {
		return Result{}, fmt.Errorf("full pull: gunzip: %w", err)
	}
	gunzip := &timedReader{r: zr}
	gunzipped := startPipe(ctx, gunzip)
	untarInput := &timedReader{r: gunzipped}
	if err := untar(untarInput, dest); err != nil {
		return Result{}, fmt.Errorf("full pull: %w", err)
	}
	// Past the tar's end lies the gzip trailer, whose CRC completes the
	// check of the decompressed stream.
	if _, err := io.Copy(io.Discard, untarInput); err != nil {
		return Result{}, fmt.Errorf("full pull: gunzip: %w", err)
	}
	extract := time.Since(extractStart)
	if _, err := io.Copy(io.Discard, download); err != nil {
		return Result{}, fmt.Errorf("full pull: download: %w", err)
	}
	if !verifier.Verified() {
		return Result{}, fmt.Errorf("full pull: blob does not match its digest %s", env.Gzip.Digest)
	}

	readStart := time.Now()
	if _, err := readTrace(os.DirFS(dest), env.Trace); err != nil {
		return Result{}, fmt.Errorf("full pull: %w", err)
	}
	read := time.Since(readStart)

	return clock.Result(
		Stage{"open", open},
		Stage{"fetch", download.finished.Sub(clock.start) - open},
		Stage{"decompress", gunzip.busy - network.busy},
		Stage{"untar", extract - untarInput.busy},
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

// A pipe reads its source ahead in a goroutine, up to pipeDepth chunks
// of pipeChunk bytes, so that the steps of a pull overlap.
type pipe struct {
	ch   chan []byte
	rest []byte
	// Set by the goroutine before it closes ch.
	err      error
	finished time.Time // when the source was read to its end
}

const (
	pipeChunk = 64 << 10
	pipeDepth = 256 // 16 MiB
)

// startPipe starts reading r ahead until its end, an error, or ctx is
// done.
func startPipe(ctx context.Context, r io.Reader) *pipe {
	p := &pipe{ch: make(chan []byte, pipeDepth)}
	go func() {
		defer close(p.ch)
		for {
			buf := make([]byte, pipeChunk)
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				select {
				case p.ch <- buf[:n]:
				case <-ctx.Done():
					p.err = ctx.Err()
					return
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				p.finished = time.Now()
				return
			}
			if err != nil {
				p.err = err
				return
			}
		}
	}()
	return p
}

// Read returns what the goroutine read, in order, then its error or
// io.EOF.
func (p *pipe) Read(b []byte) (int, error) {
	for len(p.rest) == 0 {
		chunk, ok := <-p.ch
		if !ok {
			if p.err != nil {
				return 0, p.err
			}
			return 0, io.EOF
		}
		p.rest = chunk
	}
	n := copy(b, p.rest)
	p.rest = p.rest[n:]
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
