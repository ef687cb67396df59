package writer

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/lazylayer/lazylayer/toc/estargz"

	"github.com/lazylayer/lazylayer/toc"
)

// cleanName normalises an entry or prioritised name the way readers do:
// "a/b", "/a/b", "./a/b" and "a/b/" all become "a/b"; the root is ".".
func cleanName(name string) string {
	if c := path.Clean("/" + name); c != "/" {
		return c[1:]
	}
	return "."
}

// droppedName reports names that Build writes itself and therefore drops
// from the input: an input that is already eStargz loses its old TOC and
// landmarks.
func droppedName(name string) bool {
	switch cleanName(name) {
	case estargz.TOCTarName, toc.PrefetchLandmark, toc.NoPrefetchLandmark:
		return true
	}
	return false
}

// spooledEntry is what reordering remembers of an input entry: enough to
// place it, and where to find it again in the spool file.
type spooledEntry struct {
	name string
	// link is the cleaned target of a hardlink, which must be written
	// before it.
	link string
	// global marks a PAX global header, which belongs to no file and is
	// never moved.
	global     bool
	start, end int64
}

// spool returns the tar stream in at random access, and its entries:
// ra if it is not nil (the input, read in place: see inPlace), else a
// temporary file in dir that it copies in to. done closes and removes
// the file.
func spool(ctx context.Context, ra io.ReaderAt, in io.Reader, dir string) (_ io.ReaderAt, _ []spooledEntry, done func(), _ error) {
	if ra != nil {
		entries, err := spoolTo(ctx, nil, in)
		return ra, entries, func() {}, err
	}
	f, err := os.CreateTemp(dir, "lazylayer-spool-*.tar")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("writer: spool file: %w", err)
	}
	done = func() {
		f.Close()
		os.Remove(f.Name())
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	entries, err := spoolTo(ctx, bw, in)
	if err == nil {
		if err = bw.Flush(); err != nil {
			err = fmt.Errorf("writer: spooling input: %w", err)
		}
	}
	if err != nil {
		done()
		return nil, nil, nil, err
	}
	return f, entries, done, nil
}

// inPlace returns r as an io.ReaderAt if it is one, is at its start and
// holds no compressed stream: entry offsets counted from where r is
// read then locate the entries in it. It must be called before r is
// read.
func inPlace(r io.Reader) (io.ReaderAt, bool) {
	ra, ok := r.(io.ReaderAt)
	s, ok2 := r.(io.Seeker)
	if !ok || !ok2 {
		return nil, false
	}
	if pos, err := s.Seek(0, io.SeekCurrent); err != nil || pos != 0 {
		return nil, false
	}
	magic := make([]byte, len(zstdMagic))
	n, _ := ra.ReadAt(magic, 0)
	if bytes.HasPrefix(magic[:n], gzipMagic) || bytes.HasPrefix(magic[:n], zstdMagic) {
		return nil, false
	}
	return ra, true
}

// spoolTo indexes the entries of the tar stream in, copying it to w if w
// is not nil.
func spoolTo(ctx context.Context, w io.Writer, in io.Reader) ([]spooledEntry, error) {
	er := newEntryReader(in, w)
	var entries []spooledEntry
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec, err := er.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		end, err := er.drain()
		if err != nil {
			return nil, err
		}
		if droppedName(rec.hdr.Name) {
			continue
		}
		e := spooledEntry{
			name:   cleanName(rec.hdr.Name),
			global: rec.hdr.Typeflag == tar.TypeXGlobalHeader,
			start:  rec.start,
			end:    end,
		}
		if rec.hdr.Typeflag == tar.TypeLink {
			e.link = cleanName(rec.hdr.Linkname)
		}
		entries = append(entries, e)
	}
	if er.tap.spoolErr != nil {
		return nil, fmt.Errorf("writer: spooling input: %w", er.tap.spoolErr)
	}
	return entries, nil
}

// order is the sequence in which reordering writes the spooled entries.
type order struct {
	// first are the prioritised entries with their parents and hardlink
	// targets, and rest everything else in input order; both index the
	// spooled entries.
	first, rest []int
	// missing are the prioritised names, as given, that the input lacks.
	missing []string
}

// planOrder puts the prioritised names first, each after its parent
// directories and hardlink target, then the remaining entries in input
// order. When a name occurs several times in the input, the last occurrence
// is the file (as when extracting) and is the one moved; the earlier ones
// are dropped so that they cannot override it.
func planOrder(entries []spooledEntry, prioritized []string) order {
	last := make(map[string]int, len(entries))
	for i, e := range entries {
		if !e.global {
			last[e.name] = i
		}
	}
	var o order
	picked := make(map[string]bool)
	var move func(name string)
	move = func(name string) {
		i, ok := last[name]
		if !ok || picked[name] {
			return
		}
		picked[name] = true // before recursing: hardlink cycles end here
		if name != "." {
			move(path.Dir(name))
		}
		if link := entries[i].link; link != "" {
			move(link)
		}
		o.first = append(o.first, i)
	}
	for _, name := range prioritized {
		clean := cleanName(name)
		if _, ok := last[clean]; !ok {
			o.missing = append(o.missing, name)
			continue
		}
		move(clean)
	}
	for i, e := range entries {
		if e.global || !picked[e.name] {
			o.rest = append(o.rest, i)
		}
	}
	return o
}
