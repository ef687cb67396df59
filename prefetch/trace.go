package prefetch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/lazylayer/lazylayer/overlay"
)

// Op is what a traced process did with a path.
type Op uint8

const (
	// OpRead is a read of the file's contents (open, or a recorded read).
	// It is the zero Op: a plain list of paths says nothing more.
	OpRead Op = iota
	// OpExec is an execve of the file.
	OpExec
	// OpStat is a metadata access (stat, access, readlink), which a lazy
	// layer answers from its index without fetching contents.
	OpStat
)

var opNames = [...]string{OpRead: "read", OpExec: "exec", OpStat: "stat"}

func (op Op) String() string {
	if int(op) < len(opNames) {
		return opNames[op]
	}
	return fmt.Sprintf("Op(%d)", op)
}

// MarshalText implements encoding.TextMarshaler.
func (op Op) MarshalText() ([]byte, error) {
	if int(op) >= len(opNames) {
		return nil, fmt.Errorf("prefetch: unknown op %d", op)
	}
	return []byte(opNames[op]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (op *Op) UnmarshalText(b []byte) error {
	for i, name := range opNames {
		if string(b) == name {
			*op = Op(i)
			return nil
		}
	}
	return fmt.Errorf("prefetch: unknown op %q", b)
}

// Access is one entry of an access trace.
type Access struct {
	// Path is as the process named it: absolute, or relative to the image
	// root.
	Path string `json:"path"`
	Op   Op     `json:"op,omitzero"`
	// Offset and Length select the bytes read; Length 0 means the whole
	// file or unknown.
	Offset int64 `json:"offset,omitzero"`
	Length int64 `json:"length,omitzero"`
}

// ErrTraceTooLarge is returned by the trace parsers when a trace holds
// more than MaxTraceAccesses entries.
var ErrTraceTooLarge = errors.New("prefetch: trace too large")

const (
	// MaxTraceAccesses bounds the entries a trace parser returns.
	MaxTraceAccesses = 1 << 20
	// maxTraceLine bounds a line a trace parser looks at; longer lines
	// (an execve with a huge environment) are skipped.
	maxTraceLine = 64 << 10
)

// ParseTrace reads a trace in either of two line-oriented forms, which may
// be mixed:
//
//   - a plain list: each line is one path, as written by find, fatrace
//     post-processing or a hand-made list; surrounding spaces and blank
//     lines are ignored, and so are lines starting with '#';
//   - the recording format WriteTrace writes: each line a JSON object
//     {"path": "/usr/bin/sh", "op": "read", "offset": 0, "length": 4096},
//     where op (default "read"), offset and length may be left out.
//
// A line starting with '{' is read as JSON, so a path that begins with '{'
// must be written in the JSON form.
func ParseTrace(r io.Reader) ([]Access, error) {
	var out []Access
	err := eachLine(r, func(n int, line []byte) error {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			return nil
		}
		a := Access{Path: string(line)}
		if line[0] == '{' {
			a = Access{}
			if err := json.Unmarshal(line, &a); err != nil {
				return fmt.Errorf("prefetch: trace line %d: %w", n, err)
			}
			if a.Path == "" || a.Offset < 0 || a.Length < 0 {
				return fmt.Errorf("prefetch: trace line %d: invalid access %+v", n, a)
			}
		}
		if len(out) >= MaxTraceAccesses {
			return ErrTraceTooLarge
		}
		out = append(out, a)
		return nil
	})
	return out, err
}

// WriteTrace writes accesses in the recording format ParseTrace reads.
func WriteTrace(w io.Writer, accesses []Access) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, a := range accesses {
		if err := enc.Encode(a); err != nil {
			return fmt.Errorf("prefetch: writing trace: %w", err)
		}
	}
	return bw.Flush()
}

// eachLine calls fn with each line of r, without its end of line. Lines
// longer than maxTraceLine are skipped, so memory stays bounded.
func eachLine(r io.Reader, fn func(n int, line []byte) error) error {
	br := bufio.NewReaderSize(r, maxTraceLine)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			for err == bufio.ErrBufferFull { // discard the rest of the line
				_, err = br.ReadSlice('\n')
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("prefetch: reading trace: %w", err)
			}
			continue
		}
		if len(line) > 0 {
			if ferr := fn(n, bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("prefetch: reading trace: %w", err)
		}
	}
}

// FromTrace plans the files of a trace, in trace order, resolving each
// path in the image: links are followed, and the item names the layer that
// provides the file. Metadata-only accesses (OpStat), paths the image does
// not have and non-regular files are left out, since a lazy layer serves
// them from its index. The first access of a file sets its priority.
func FromTrace(ctx context.Context, img *overlay.FS, accesses []Access, opts ...Option) (*Plan, error) {
	o := buildOptions(opts)
	var p Plan
	res := img.NewResolver()
	for i, a := range accesses {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return &p, err
			}
		}
		if a.Op == OpStat || a.Offset < 0 || a.Length < 0 {
			continue
		}
		loc, err := res.Resolve(a.Path)
		if err != nil || !isRegular(loc.Info) {
			continue
		}
		if p.Len() >= o.maxItems {
			return &p, fmt.Errorf("prefetch: trace: %d items: %w", o.maxItems, ErrLimit)
		}
		p.Add(Item{Layer: loc.Layer, Path: loc.Path, Offset: a.Offset, Length: a.Length,
			Priority: i, Reason: ReasonTrace})
	}
	return &p, nil
}

// straceCall describes where a system call takes its path.
type straceCall struct {
	op      Op
	pathArg int  // index of the path argument
	dirfd   bool // the argument before the path is a directory fd
}

var straceCalls = map[string]straceCall{
	"open":       {OpRead, 0, false},
	"openat":     {OpRead, 1, true},
	"openat2":    {OpRead, 1, true},
	"execve":     {OpExec, 0, false},
	"execveat":   {OpExec, 1, true},
	"stat":       {OpStat, 0, false},
	"lstat":      {OpStat, 0, false},
	"stat64":     {OpStat, 0, false},
	"lstat64":    {OpStat, 0, false},
	"newfstatat": {OpStat, 1, true},
	"fstatat64":  {OpStat, 1, true},
	"statx":      {OpStat, 1, true},
	"access":     {OpStat, 0, false},
	"faccessat":  {OpStat, 1, true},
	"faccessat2": {OpStat, 1, true},
	"readlink":   {OpStat, 0, false},
	"readlinkat": {OpStat, 1, true},
	"chdir":      {OpStat, 0, false},
}

// ParseStrace reads the output of strace (with or without -f, -tt, -T and
// -y) and returns the paths of the successful calls that name a file:
// open, openat, openat2, execve, execveat (as OpRead and OpExec), and the
// stat, access and readlink families (as OpStat). Calls interrupted by
// another process ("<unfinished ...>") are matched with their
// "<... resumed>" line. A relative path is made absolute with the
// process's directory when chdir calls or -y file descriptor decorations
// say what it is, and dropped otherwise. Other lines are ignored.
func ParseStrace(r io.Reader) ([]Access, error) {
	pending := make(map[string]string) // pid -> the call text before <unfinished ...>
	cwd := make(map[string]string)     // pid -> directory, from chdir
	var out []Access
	err := eachLine(r, func(_ int, raw []byte) error {
		pid, line := stracePrefix(string(raw))
		if rest, ok := strings.CutPrefix(line, "<... "); ok {
			name, tail, ok := strings.Cut(rest, " resumed>")
			start, found := pending[pid]
			delete(pending, pid)
			if !ok || !found || !strings.HasPrefix(start, name+"(") {
				return nil
			}
			line = start + tail
		} else if before, _, ok := strings.Cut(line, " <unfinished ...>"); ok {
			if len(pending) < 4096 {
				pending[pid] = before
			}
			return nil
		}
		if child, ok := forkResult(line); ok && cwd[pid] != "" && len(cwd) < 4096 {
			cwd[child] = cwd[pid] // a child starts in its parent's directory
		}
		a, ok := parseStraceCall(line, cwd[pid])
		if !ok {
			return nil
		}
		if strings.HasPrefix(line, "chdir(") {
			cwd[pid] = a.Path
			return nil
		}
		if len(out) >= MaxTraceAccesses {
			return ErrTraceTooLarge
		}
		out = append(out, a)
		return nil
	})
	return out, err
}

// stracePrefix splits the pid and timestamps off a line of strace output:
// "[pid  42] ", or "42  " as strace -f -o writes it, then any -t/-tt/-ttt/-r
// timestamps.
func stracePrefix(line string) (pid, rest string) {
	rest = strings.TrimLeft(line, " ")
	if r, ok := strings.CutPrefix(rest, "[pid"); ok {
		if p, after, ok := strings.Cut(r, "]"); ok {
			pid, rest = strings.TrimSpace(p), after
		}
	}
	first := true
	for {
		rest = strings.TrimLeft(rest, " ")
		word, after, ok := strings.Cut(rest, " ")
		if !ok || word == "" || strings.Trim(word, "0123456789:.") != "" {
			return pid, rest
		}
		if first && pid == "" && strings.Trim(word, "0123456789") == "" {
			pid = word
		}
		first = false
		rest = after
	}
}

// forkResult returns the pid of the child a successful clone, clone3, fork
// or vfork line created.
func forkResult(line string) (string, bool) {
	name, _, _ := strings.Cut(line, "(")
	switch name {
	case "clone", "clone3", "fork", "vfork":
	default:
		return "", false
	}
	i := strings.LastIndex(line, ") = ")
	if i < 0 {
		return "", false
	}
	pid, _, _ := strings.Cut(line[i+len(") = "):], " ")
	if pid == "" || strings.Trim(pid, "0123456789") != "" {
		return "", false
	}
	return pid, true
}

// parseStraceCall parses "name(args...) = result" for the calls in
// straceCalls and returns the access if the call succeeded.
func parseStraceCall(line, cwd string) (Access, bool) {
	name, args, ok := strings.Cut(line, "(")
	call, known := straceCalls[name]
	if !ok || !known {
		return Access{}, false
	}
	// ") = RESULT"; strace aligns the result of a resumed call with
	// spaces before the "=".
	eq := strings.LastIndex(args, " = ")
	if eq < 0 {
		return Access{}, false
	}
	result := args[eq+len(" = "):]
	end := len(strings.TrimRight(args[:eq], " "))
	if end == 0 || args[end-1] != ')' || result == "" || result[0] == '-' || result[0] == '?' {
		return Access{}, false // failed, or the process died in the call
	}
	dir := cwd
	rest := args[:end-1]
	for i := 0; i < call.pathArg; i++ {
		arg, after, ok := cutArg(rest)
		if !ok {
			return Access{}, false
		}
		if call.dirfd && i == call.pathArg-1 && arg != "AT_FDCWD" {
			// With -y, "3</usr/lib>" names the directory of the fd.
			_, d, ok := strings.Cut(arg, "<")
			if !ok || !strings.HasSuffix(d, ">") {
				dir = ""
			} else {
				dir = strings.TrimSuffix(d, ">")
			}
		}
		rest = after
	}
	p, ok := unquoteStrace(rest)
	if !ok || p == "" {
		return Access{}, false
	}
	if !strings.HasPrefix(p, "/") {
		if !strings.HasPrefix(dir, "/") {
			return Access{}, false
		}
		p = dir + "/" + p
	}
	return Access{Path: p, Op: call.op}, true
}

// cutArg splits the first argument off an argument list, respecting
// quoted strings, brackets and braces.
func cutArg(s string) (arg, rest string, ok bool) {
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '[' || c == '{' || c == '(' || c == '<':
			depth++
		case c == ']' || c == '}' || c == ')' || c == '>':
			depth--
		case c == ',' && depth == 0:
			return s[:i], strings.TrimLeft(s[i+1:], " "), true
		}
	}
	return "", "", false
}

// unquoteStrace decodes the C-style quoted string strace prints at the
// start of s. A string strace truncated ("..." after the quote) is refused.
func unquoteStrace(s string) (string, bool) {
	if !strings.HasPrefix(s, `"`) {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			if strings.HasPrefix(s[i+1:], "...") {
				return "", false
			}
			return b.String(), true
		case '\\':
			i++
			if i >= len(s) {
				return "", false
			}
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'v':
				b.WriteByte('\v')
			case 'f':
				b.WriteByte('\f')
			case 'x':
				if i+2 >= len(s) {
					return "", false
				}
				v, ok := hexByte(s[i+1], s[i+2])
				if !ok {
					return "", false
				}
				b.WriteByte(v)
				i += 2
			case '0', '1', '2', '3', '4', '5', '6', '7':
				v := 0
				j := i
				for ; j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7'; j++ {
					v = v*8 + int(s[j]-'0')
				}
				if v > 0xff {
					return "", false
				}
				b.WriteByte(byte(v))
				i = j - 1
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", false
}

func hexByte(hi, lo byte) (byte, bool) {
	h, ok1 := hexDigit(hi)
	l, ok2 := hexDigit(lo)
	return h<<4 | l, ok1 && ok2
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
