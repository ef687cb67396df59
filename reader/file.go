package reader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/iox"
	"github.com/lazylayer/lazylayer/toc"
)

// ContextReaderAt is implemented by the regular files a Layer opens:
// ReadAtContext is ReadAt that stops waiting for the chunks it needs when
// ctx is done, with ctx's error, as a FUSE server passes the kernel's
// interrupt down. A fetch other reads wait for goes on without it; one only
// it waited for is cancelled. The fetcher sees ctx's values.
type ContextReaderAt interface {
	ReadAtContext(ctx context.Context, p []byte, off int64) (int, error)
}

// file is an open regular file. Read, Seek and WriteTo share an offset and
// must not be called concurrently; ReadAt may be, as io.ReaderAt says.
type file struct {
	layer *Layer
	entry *toc.Entry // content entry (a hard link's target)
	id    int32      // entry's record
	own   int32      // the record of the name opened: id, or a hard link's
	info  *fileInfo
	path  string

	offset int64
	closed atomic.Bool
	// sum checks the file's digest when Read or WriteTo hands out its
	// last byte.
	sum fileSum

	// last is the most recently loaded chunk, so that a run of small
	// reads within one chunk loads it once even without a cache.
	mu   sync.Mutex
	last struct {
		index int
		data  []byte
	}
	ahead readAhead
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }

func (f *file) Close() error {
	if f.closed.Swap(true) {
		return &fs.PathError{Op: "close", Path: f.path, Err: fs.ErrClosed}
	}
	return nil
}

func (f *file) Read(p []byte) (int, error) {
	if f.closed.Load() {
		return 0, &fs.PathError{Op: "read", Path: f.path, Err: fs.ErrClosed}
	}
	n, err := f.readAt(f.layer.ctx, p, f.offset, "read")
	if serr := f.sum.add(f.layer, f.entry, p[:n], f.offset); serr != nil {
		return 0, &fs.PathError{Op: "read", Path: f.path, Err: serr}
	}
	f.offset += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if f.closed.Load() {
		return 0, &fs.PathError{Op: "read", Path: f.path, Err: fs.ErrClosed}
	}
	return f.readAt(f.layer.ctx, p, off, "read")
}

// ReadAtContext is ReadAt that gives up waiting for the chunks it needs
// when ctx is done, returning ctx's error (see ContextReaderAt).
func (f *file) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if f.closed.Load() {
		return 0, &fs.PathError{Op: "read", Path: f.path, Err: fs.ErrClosed}
	}
	return f.readAt(ctx, p, off, "read")
}

func (f *file) Seek(offset int64, whence int) (int64, error) {
	if f.closed.Load() {
		return 0, &fs.PathError{Op: "seek", Path: f.path, Err: fs.ErrClosed}
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.offset
	case io.SeekEnd:
		offset += f.entry.Size
	default:
		return 0, &fs.PathError{Op: "seek", Path: f.path, Err: fs.ErrInvalid}
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.path, Err: fs.ErrInvalid}
	}
	f.offset = offset
	return offset, nil
}

// WriteTo writes the rest of the file to w. It reads whole chunks, as many
// at a time as the layer's concurrency allows (within 64 MiB), so that
// they are fetched together and decompressed in parallel.
func (f *file) WriteTo(w io.Writer) (int64, error) {
	if f.closed.Load() {
		return 0, &fs.PathError{Op: "read", Path: f.path, Err: fs.ErrClosed}
	}
	chunks := f.entry.Chunks
	perWindow := max(f.layer.cfg.concurrency, 1)
	if biggest := maxChunkSize(f.entry); biggest > 0 {
		perWindow = int(max(min(int64(perWindow), (64<<20)/biggest), 1))
	}
	var buf []byte
	var written int64
	for f.offset < f.entry.Size {
		i := sort.Search(len(chunks), func(i int) bool { return chunks[i].Offset+chunks[i].Size > f.offset })
		last := &chunks[min(i+perWindow, len(chunks))-1]
		want := last.Offset + last.Size - f.offset
		if int64(cap(buf)) < want {
			buf = make([]byte, want)
		}
		n, err := f.readAt(f.layer.ctx, buf[:want], f.offset, "read")
		if serr := f.sum.add(f.layer, f.entry, buf[:n], f.offset); serr != nil {
			return written, &fs.PathError{Op: "read", Path: f.path, Err: serr}
		}
		if n > 0 {
			m, werr := w.Write(buf[:n])
			written += int64(m)
			f.offset += int64(m)
			if werr != nil {
				return written, werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

func maxChunkSize(e *toc.Entry) int64 {
	var m int64
	for _, c := range e.Chunks {
		m = max(m, c.Size)
	}
	return m
}

// readAt fills p from offset off of the file, loading the chunks it
// needs, several at a time.
func (f *file) readAt(ctx context.Context, p []byte, off int64, op string) (int, error) {
	if off < 0 {
		return 0, &fs.PathError{Op: op, Path: f.path, Err: fs.ErrInvalid}
	}
	if err := f.layer.fileErr(f.entry); err != nil {
		return 0, &fs.PathError{Op: op, Path: f.path, Err: err}
	}
	if err := f.layer.checkEntries(ctx, f.own, f.id); err != nil {
		return 0, &fs.PathError{Op: op, Path: f.path, Err: f.layer.closedErr(err)}
	}
	size := f.entry.Size
	if off >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), size)
	chunks := f.entry.Chunks
	first := sort.Search(len(chunks), func(i int) bool { return chunks[i].Offset+chunks[i].Size > off })
	last := first
	for last < len(chunks)-1 && chunks[last].Offset+chunks[last].Size < end {
		last++
	}

	// region copies the part of chunk i that the read wants into p.
	region := func(i int, data []byte) int {
		c := &chunks[i]
		lo, hi := max(off, c.Offset), min(end, c.Offset+c.Size)
		return copy(p[lo-off:hi-off], data[lo-c.Offset:hi-c.Offset])
	}
	fill := func(i int, src frameSource) (int, error) {
		if c := &chunks[i]; c.Zeros {
			if err := f.layer.zeroChunk(ctx, f.entry, i); err != nil {
				return 0, &fs.PathError{Op: op, Path: f.path, Err: fmt.Errorf("chunk %d: %w", i, f.layer.closedErr(err))}
			}
			lo, hi := max(off, c.Offset), min(end, c.Offset+c.Size)
			clear(p[lo-off : hi-off])
			return int(hi - lo), nil
		}
		data, err := f.chunk(ctx, i, src)
		if err != nil {
			return 0, &fs.PathError{Op: op, Path: f.path, Err: err}
		}
		return region(i, data), nil
	}

	ahead := f.planAhead(off, end, first, last)
	var n int
	if len(ahead) == 0 && (first == last || f.layer.cfg.concurrency <= 1) {
		for i := first; i <= last; i++ {
			m, err := fill(i, nil)
			n += m
			if err != nil {
				return n, err
			}
		}
	} else {
		// Serve what the cache holds, then fetch every other frame the
		// read needs, and those read ahead, with one request and
		// decompress them in parallel.
		var pending []int
		var frames []fetcher.Range
		for i := first; i <= last; i++ {
			if f.loadingAhead(i) {
				pending = append(pending, i)
				continue
			}
			if data, ok := f.layer.cachedChunk(f.entry, i); ok {
				f.layer.observe(ctx, f.entry, i)(nil)
				region(i, data)
				continue
			}
			pending = append(pending, i)
			if c := &chunks[i]; !c.Zeros && c.Size > 0 {
				frames = append(frames, fetcher.Range{Offset: c.FrameOffset, Length: c.FrameEnd - c.FrameOffset})
			}
		}
		frames = append(frames, f.aheadFrames(ahead)...)
		var src frameSource
		if len(frames) > 1 {
			src = f.layer.newFrameBatch(ctx, frames).get
		}
		for _, load := range ahead {
			f.layer.goTask(func() { f.loadAhead(load, src) })
		}
		errs := make([]error, last-first+1)
		sem := make(chan struct{}, f.layer.cfg.concurrency)
		var wg sync.WaitGroup
		for _, i := range pending {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				_, errs[i-first] = fill(i, src)
			})
		}
		wg.Wait()
		// Report the bytes before the first failed chunk, as io.ReaderAt
		// asks: everything in p up to n is valid.
		n = int(end - off)
		for k, err := range errs {
			if err != nil {
				return int(max(chunks[first+k].Offset, off) - off), err
			}
		}
	}
	if end-off < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

// chunk returns the verified bytes of chunk i, reusing the last one.
func (f *file) chunk(ctx context.Context, i int, src frameSource) ([]byte, error) {
	f.mu.Lock()
	if f.last.data != nil && f.last.index == i {
		data := f.last.data
		f.mu.Unlock()
		return data, nil
	}
	load := f.takeAhead(i)
	f.mu.Unlock()
	if load != nil {
		select {
		case <-load.done:
		case <-f.layer.ctx.Done():
			return nil, fmt.Errorf("chunk %d: %w", i, fs.ErrClosed)
		case <-ctx.Done():
			return nil, fmt.Errorf("chunk %d: %w", i, ctx.Err())
		}
		if load.err == nil {
			f.layer.observe(ctx, f.entry, i)(nil)
			f.mu.Lock()
			f.last.index, f.last.data = i, load.data
			f.mu.Unlock()
			return load.data, nil
		}
		// The read-ahead failed; the read tries again on its own.
	}
	data, _, err := f.layer.chunkData(ctx, chunkRef{f.id, int32(i)}, src)
	if err != nil {
		return nil, fmt.Errorf("chunk %d: %w", i, f.layer.closedErr(err))
	}
	f.mu.Lock()
	f.last.index, f.last.data = i, data
	f.mu.Unlock()
	return data, nil
}

// closedErr reports a read that failed because the layer was closed as
// fs.ErrClosed rather than as a cancelled context.
func (l *Layer) closedErr(err error) error {
	if errors.Is(err, context.Canceled) && l.ctx.Err() != nil {
		return fs.ErrClosed
	}
	return err
}

// dirFile is an open directory.
type dirFile struct {
	info    *fileInfo
	entries []fs.DirEntry
	read    bool
	closed  bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }

func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.node.path, Err: errIsDir}
}

func (d *dirFile) Close() error {
	if d.closed {
		return &fs.PathError{Op: "close", Path: d.info.node.path, Err: fs.ErrClosed}
	}
	d.closed = true
	return nil
}

// ReadDir lists the directory in name order, n entries at a time as
// fs.ReadDirFile describes.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		d.entries = d.info.l.dirEntries(d.info.node.sorted)
		d.read = true
	}
	return iox.NextEntries(&d.entries, n)
}

// specialFile is an open symbolic link target, device, FIFO or other
// entry without content: it reads as empty.
type specialFile struct {
	info   *fileInfo
	closed bool
}

func (s *specialFile) Stat() (fs.FileInfo, error) { return s.info, nil }
func (s *specialFile) Read([]byte) (int, error)   { return 0, io.EOF }
func (s *specialFile) Close() error {
	if s.closed {
		return &fs.PathError{Op: "close", Path: s.info.node.path, Err: fs.ErrClosed}
	}
	s.closed = true
	return nil
}
