package untrusted

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxQuoted is how many bytes of an untrusted string Short keeps.
const MaxQuoted = 128

// Short returns s cut to at most MaxQuoted bytes, at a UTF-8 boundary, with
// a note of its full length when it was cut. It is meant for %q verbs in
// error messages, so that an attacker cannot make an error megabytes long:
//
//	fmt.Errorf("toc: entry %q: ...", untrusted.Short(name))
func Short(s string) string {
	if len(s) <= MaxQuoted {
		return s
	}
	cut := MaxQuoted
	for cut > MaxQuoted-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "...(" + strconv.Itoa(len(s)) + " bytes)"
}

// Err returns err with its message cut by Short, for errors of other
// packages (encoding/json, time) that quote the input they reject; errors.Is
// and errors.As still see err.
func Err(err error) error {
	if err == nil || len(err.Error()) <= MaxQuoted {
		return err
	}
	return shortError{err}
}

type shortError struct{ err error }

func (e shortError) Error() string { return Short(e.err.Error()) }
func (e shortError) Unwrap() error { return e.err }

// Decimals parses s as exactly n colon-separated unsigned decimal
// numbers that fit an int64, as annotations that locate byte ranges
// spell them ("offset:length"). Signs, spaces and empty fields are
// refused; errors quote s cut short by Short.
func Decimals(s string, n int) ([]int64, error) {
	parts := strings.SplitN(s, ":", n+1)
	if len(parts) != n {
		return nil, fmt.Errorf("%q has %d fields, want %d", Short(s), strings.Count(s, ":")+1, n)
	}
	v := make([]int64, n)
	for i, p := range parts {
		// ParseInt alone would accept a sign.
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return nil, fmt.Errorf("%q: field %d is not a decimal number", Short(s), i)
		}
		x, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: field %d out of range", Short(s), i)
		}
		v[i] = x
	}
	return v, nil
}
