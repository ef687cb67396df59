package tarcheck

// Internals the external tests (package tarcheck_test, which shares
// internal/tartest with other packages) check.
var (
	ParsePlainHeader = parsePlainHeader
	ValidChecksum    = validChecksum
)

// Pending returns the headers s holds for the next entry, after the
// padding before them.
func (s *Stream) Pending() []byte {
	if len(s.group) <= s.padding {
		return nil
	}
	return s.group[s.padding:]
}
