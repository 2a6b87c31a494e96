package config

import (
	"strings"
)

// keyLines maps each key path of a TOML document to the line (1-based) it
// is defined on, so that every problem can be reported as FILE:LINE.
//
// BurntSushi/toml records key positions only internally (its MetaData has
// no exported position lookup), so the document is scanned again here. The
// scanner trusts that the text already parsed as TOML: it only has to tell
// table headers and "key =" lines apart from strings, comments and the
// insides of multi-line arrays.
type keyLines map[string]int

// pathKey joins a key path with a byte that cannot occur in TOML keys
// unquoted, so that quoted keys containing "." stay distinct.
func pathKey(path []string) string { return strings.Join(path, "\x00") }

// line returns the line of path: where it is defined, else (an implicit
// table) the first line of anything under it, else the line of its
// closest defined ancestor, else 0.
func (kl keyLines) line(path []string) int {
	for n := len(path); n > 0; n-- {
		p := path[:n]
		if l, ok := kl[pathKey(p)]; ok {
			return l
		}
		prefix := pathKey(p) + "\x00"
		best := 0
		for k, l := range kl {
			if strings.HasPrefix(k, prefix) && (best == 0 || l < best) {
				best = l
			}
		}
		if best != 0 {
			return best
		}
	}
	return 0
}

func scanKeyLines(doc string) keyLines {
	s := &scanner{src: doc, line: 1, lines: keyLines{}}
	s.run()
	return s.lines
}

type scanner struct {
	src   string
	pos   int
	line  int
	table []string
	lines keyLines
}

func (s *scanner) peek(off int) byte {
	if s.pos+off < len(s.src) {
		return s.src[s.pos+off]
	}
	return 0
}

func (s *scanner) advance() {
	if s.src[s.pos] == '\n' {
		s.line++
	}
	s.pos++
}

func (s *scanner) skipBlank() {
	for s.pos < len(s.src) && (s.src[s.pos] == ' ' || s.src[s.pos] == '\t') {
		s.pos++
	}
}

func (s *scanner) skipToEOL() {
	for s.pos < len(s.src) && s.src[s.pos] != '\n' {
		s.pos++
	}
}

// run reads the document statement by statement: at the start of each
// line there is a comment, a table header, a key/value pair or nothing.
func (s *scanner) run() {
	for s.pos < len(s.src) {
		s.skipBlank()
		switch c := s.peek(0); {
		case c == 0:
			return
		case c == '\n' || c == '\r':
			s.advance()
		case c == '#':
			s.skipToEOL()
		case c == '[':
			s.header()
		default:
			s.keyValue()
		}
	}
}

func (s *scanner) header() {
	line := s.line
	s.pos++
	if s.peek(0) == '[' {
		s.pos++
	}
	key := s.key()
	s.table = key
	if _, ok := s.lines[pathKey(key)]; !ok {
		s.lines[pathKey(key)] = line
	}
	s.skipToEOL()
}

func (s *scanner) keyValue() {
	line := s.line
	key := s.key()
	if len(key) == 0 || s.peek(0) != '=' {
		// Not a key: the document did not come from a TOML parser that
		// accepted it. Skip the line rather than guess.
		s.skipToEOL()
		return
	}
	s.pos++
	full := append(append([]string(nil), s.table...), key...)
	for i := len(s.table) + 1; i <= len(full); i++ {
		// Dotted keys define their intermediate tables on this line too.
		if _, ok := s.lines[pathKey(full[:i])]; !ok {
			s.lines[pathKey(full[:i])] = line
		}
	}
	s.value()
}

// key reads a dotted key of bare and quoted parts and stops after the
// whitespace following it (at "=" or "]").
func (s *scanner) key() []string {
	var parts []string
	for {
		s.skipBlank()
		var part strings.Builder
		switch s.peek(0) {
		case '"':
			s.pos++
			for s.pos < len(s.src) && s.src[s.pos] != '"' && s.src[s.pos] != '\n' {
				if s.src[s.pos] == '\\' && s.pos+1 < len(s.src) {
					s.pos++
					part.WriteByte(unescape(s.src[s.pos]))
					s.pos++
					continue
				}
				part.WriteByte(s.src[s.pos])
				s.pos++
			}
			if s.peek(0) == '"' {
				s.pos++
			}
		case '\'':
			s.pos++
			for s.pos < len(s.src) && s.src[s.pos] != '\'' && s.src[s.pos] != '\n' {
				part.WriteByte(s.src[s.pos])
				s.pos++
			}
			if s.peek(0) == '\'' {
				s.pos++
			}
		default:
			for s.pos < len(s.src) && isBare(s.src[s.pos]) {
				part.WriteByte(s.src[s.pos])
				s.pos++
			}
			if part.Len() == 0 {
				return parts
			}
		}
		parts = append(parts, part.String())
		s.skipBlank()
		if s.peek(0) != '.' {
			return parts
		}
		s.pos++
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// unescape is enough of TOML's escapes for key names; \uXXXX keys are
// rare enough that their line falls back to the enclosing table.
func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 't':
		return '\t'
	}
	return c
}

// value skips a value up to the end of its statement: strings (all four
// kinds), arrays and inline tables spanning lines, and a trailing comment.
func (s *scanner) value() {
	depth := 0
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		switch {
		case c == '\n':
			if depth == 0 {
				return
			}
			s.advance()
		case c == '#':
			s.skipToEOL()
		case c == '[' || c == '{':
			depth++
			s.pos++
		case c == ']' || c == '}':
			depth--
			s.pos++
		case c == '"' || c == '\'':
			s.str(c)
		default:
			s.pos++
		}
	}
}

func (s *scanner) str(q byte) {
	if s.peek(1) == q && s.peek(2) == q {
		s.pos += 3
		end := strings.Repeat(string(q), 3)
		for s.pos < len(s.src) {
			if q == '"' && s.src[s.pos] == '\\' {
				s.advance()
				if s.pos < len(s.src) {
					s.advance()
				}
				continue
			}
			if strings.HasPrefix(s.src[s.pos:], end) {
				s.pos += 3
				// Up to two more quotes may belong to the content.
				for i := 0; i < 2 && s.peek(0) == q; i++ {
					s.pos++
				}
				return
			}
			s.advance()
		}
		return
	}
	s.pos++
	for s.pos < len(s.src) && s.src[s.pos] != q && s.src[s.pos] != '\n' {
		if q == '"' && s.src[s.pos] == '\\' {
			s.pos++
		}
		s.pos++
	}
	if s.pos < len(s.src) && s.src[s.pos] == q {
		s.pos++
	}
}
