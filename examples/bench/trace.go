package main

import (
	"bufio"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// TraceFile is one file a workload reads, with what reading it must yield.
type TraceFile struct {
	Name string // slash path relative to the layer root
	Size int64
	CRC  uint32 // CRC-32C of the contents
}

// castagnoli is the CRC-32C table: hardware-accelerated, so checking what
// a mode read costs little next to the reading being timed. Integrity
// against tampering is the reader's job (it verifies sha256 chunk
// digests); this check catches a mode that returns wrong bytes.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// loadTrace reads a trace (root-relative paths, one a line; blank lines
// and lines starting with # are ignored) named traceFile in errors, and
// describes each file from the tree at root. Files missing from the tree,
// or not regular, are left out and returned in skipped, so a trace
// recorded on another version of a tree still runs.
func loadTrace(r io.Reader, traceFile, root string) (files []TraceFile, skipped []string, err error) {
	fsys := os.DirFS(root)
	seen := make(map[string]bool)
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		name := strings.TrimSpace(sc.Text())
		if name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		name = path.Clean(name)
		if !fs.ValidPath(name) {
			return nil, nil, fmt.Errorf("%s:%d: %q is not a path inside the layer", traceFile, line, name)
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		tf, err := describe(fsys, name)
		if err != nil {
			skipped = append(skipped, name)
			continue
		}
		files = append(files, tf)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", traceFile, err)
	}
	if len(files) == 0 {
		return nil, skipped, fmt.Errorf("%s: none of its %d files is a regular file under %s", traceFile, len(skipped), root)
	}
	return files, skipped, nil
}

func describe(fsys fs.FS, name string) (TraceFile, error) {
	fi, err := fs.Lstat(fsys, name)
	if err != nil {
		return TraceFile{}, err
	}
	if !fi.Mode().IsRegular() {
		return TraceFile{}, fmt.Errorf("%s: not a regular file", name)
	}
	f, err := fsys.Open(name)
	if err != nil {
		return TraceFile{}, err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, f)
	if err != nil {
		return TraceFile{}, err
	}
	return TraceFile{Name: name, Size: n, CRC: h.Sum32()}, nil
}

// readTrace reads every trace file from fsys in trace order, as the
// workload would, and checks each against its size and CRC. It returns the
// bytes read. A lazy mode passes its reader's file system; a full pull
// passes the extracted directory.
func readTrace(fsys fs.FS, trace []TraceFile) (int64, error) {
	buf := make([]byte, 256<<10)
	var total int64
	for _, tf := range trace {
		f, err := fsys.Open(tf.Name)
		if err != nil {
			return total, fmt.Errorf("read trace: %w", err)
		}
		h := crc32.New(castagnoli)
		n, err := io.CopyBuffer(h, f, buf)
		f.Close()
		total += n
		if err != nil {
			return total, fmt.Errorf("read trace: %s: %w", tf.Name, err)
		}
		if n != tf.Size || h.Sum32() != tf.CRC {
			return total, fmt.Errorf("read trace: %s: got %d bytes with CRC-32C %08x, want %d bytes with %08x", tf.Name, n, h.Sum32(), tf.Size, tf.CRC)
		}
	}
	return total, nil
}
