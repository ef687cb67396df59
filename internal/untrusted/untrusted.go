package untrusted

import (
	"strconv"
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
