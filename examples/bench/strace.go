package main

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// straceToTrace reads an `strace -f` log (of openat and execve calls at
// least) and returns the regular files under root that were successfully
// opened for reading or executed, as root-relative slash paths in the
// order of their first use. It handles the split "<unfinished ...>" /
// "<... resumed>" lines that -f produces. Relative paths, which would need
// each process's working directory, are skipped; tools open their inputs
// by absolute path. Files are checked against root as it is now, so run it
// on the tree that was traced.
//
// It is deliberately minimal: the prefetch package owns the general trace
// parser.
func straceToTrace(log io.Reader, root string) ([]string, error) {
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("strace: root: %w", err)
	}
	pending := make(map[string]string) // pid -> call text before "<unfinished ...>"
	seen := make(map[string]bool)
	var files []string
	sc := bufio.NewScanner(log)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		pid, call, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		call = strings.TrimLeft(call, " ")
		if head, ok := strings.CutSuffix(call, " <unfinished ...>"); ok {
			pending[pid] = head
			continue
		}
		if strings.HasPrefix(call, "<... ") {
			_, tail, ok := strings.Cut(call, " resumed>")
			if !ok {
				continue
			}
			call = pending[pid] + tail
			delete(pending, pid)
		}
		name, ok := readPath(call)
		if !ok || !filepath.IsAbs(name) {
			continue
		}
		rel, ok := regularUnder(root, name)
		if ok && !seen[rel] {
			seen[rel] = true
			files = append(files, rel)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("strace: %w", err)
	}
	return files, nil
}

// readPath returns the path a successful read-only openat or execve call
// named.
func readPath(call string) (string, bool) {
	var args string
	switch {
	case strings.HasPrefix(call, "openat("):
		// openat(AT_FDCWD, "/path", O_RDONLY|O_CLOEXEC) = 3
		_, args, _ = strings.Cut(call, ", ")
		if !strings.Contains(call, "O_RDONLY") || strings.Contains(call, "O_DIRECTORY") {
			return "", false
		}
	case strings.HasPrefix(call, "execve("):
		args = strings.TrimPrefix(call, "execve(")
	default:
		return "", false
	}
	eq := strings.LastIndex(call, ") = ")
	if eq < 0 {
		return "", false
	}
	// A successful call returns a descriptor or 0, printed in decimal
	// digits (Atoi alone would also take a sign).
	ret, _, _ := strings.Cut(call[eq+len(") = "):], " ")
	if ret == "" || ret[0] < '0' || ret[0] > '9' {
		return "", false
	}
	if _, err := strconv.Atoi(ret); err != nil {
		return "", false
	}
	if !strings.HasPrefix(args, `"`) {
		return "", false
	}
	end := strings.Index(args[1:], `"`)
	if end < 0 {
		return "", false
	}
	name, err := strconv.Unquote(args[:end+2])
	if err != nil {
		return "", false
	}
	return name, true
}

// regularUnder resolves name and reports its slash path relative to root
// if it is a regular file inside root.
func regularUnder(root, name string) (string, bool) {
	resolved, err := filepath.EvalSymlinks(name)
	if err != nil {
		return "", false
	}
	rel, err := filepath.Rel(root, resolved)
	if err != nil || !filepath.IsLocal(rel) {
		return "", false
	}
	if fi, err := os.Lstat(resolved); err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// convertStrace writes the trace of the strace log at logPath (gzipped if
// it ends in .gz) for root to w, one path a line.
func convertStrace(w io.Writer, logPath, root string) error {
	f, err := os.Open(logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(logPath, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("strace: %s: %w", logPath, err)
		}
		r = zr
	}
	files, err := straceToTrace(r, root)
	if err != nil {
		return fmt.Errorf("%s: %w", logPath, err)
	}
	bw := bufio.NewWriter(w)
	for _, f := range files {
		fmt.Fprintln(bw, f)
	}
	return bw.Flush()
}
