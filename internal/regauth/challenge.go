package regauth

import "strings"

// Challenge is one parsed WWW-Authenticate challenge.
type Challenge struct {
	Scheme string            // lower case: "bearer", "basic"
	Params map[string]string // keys lower case
}

// ParseChallenges parses WWW-Authenticate header values (RFC 9110 section
// 11.6.1): a scheme, then comma-separated auth-params, with several
// challenges allowed in one value. token68 credentials are skipped.
func ParseChallenges(values []string) []Challenge {
	var out []Challenge
	for _, s := range values {
		cur := -1 // index in out of the challenge being parsed
		for {
			s = strings.TrimLeft(s, " \t,")
			if s == "" {
				break
			}
			tok, rest := cutToken(s)
			if tok == "" { // not a token: skip a byte and resynchronise
				s = s[1:]
				continue
			}
			rest = strings.TrimLeft(rest, " \t")
			if cur >= 0 && strings.HasPrefix(rest, "=") {
				rest = strings.TrimLeft(rest[1:], " \t")
				var val string
				if strings.HasPrefix(rest, `"`) {
					val, rest = cutQuoted(rest)
				} else {
					val, rest = cutToken(rest)
				}
				if key := strings.ToLower(tok); out[cur].Params[key] == "" {
					out[cur].Params[key] = val
				}
				s = rest
				continue
			}
			// A token not followed by "=" starts a new challenge.
			out = append(out, Challenge{Scheme: strings.ToLower(tok), Params: map[string]string{}})
			cur = len(out) - 1
			s = rest
		}
	}
	return out
}

// cutToken splits off a leading RFC 9110 token (token68 padding "=" and
// "/" excluded, since challenges in practice do not use them).
func cutToken(s string) (tok, rest string) {
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func isTokenChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// cutQuoted splits off a leading quoted-string, undoing backslash escapes.
// An unterminated string runs to the end of s.
func cutQuoted(s string) (val, rest string) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:]
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}
