package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// parser collects problems while the sections are read; nothing stops at
// the first one, so `isle check` can list them all.
type parser struct {
	file  string
	base  string
	lines keyLines
	errs  Errors
	// badIDs and badSecrets record that an identity or a secret was
	// already reported, so cross-checks that depend on them stay quiet.
	badIDs, badSecrets bool
}

func (p *parser) errorAt(path []string, format string, args ...any) {
	p.errs = append(p.errs, Error{File: p.file, Line: p.lines.line(path), Msg: fmt.Sprintf(format, args...)})
}

// table is one TOML table being read: typed getters report a wrong type
// or value at the key's line, and known reports every key nobody asked
// for.
type table struct {
	p    *parser
	path []string
	m    map[string]any
}

func (t *table) keyPath(key string) []string {
	if key == "" {
		return t.path
	}
	return append(slices.Clip(t.path), key)
}

// display writes a key path the way it would appear in a table header,
// quoting names that are not bare keys: connections."a b".local.
func display(path []string) string {
	parts := make([]string, len(path))
	for i, k := range path {
		if k != "" && strings.IndexFunc(k, func(r rune) bool { return r > 127 || !isBare(byte(r)) }) < 0 {
			parts[i] = k
		} else {
			parts[i] = strconv.Quote(k)
		}
	}
	return strings.Join(parts, ".")
}

func (t *table) name(key string) string { return display(t.keyPath(key)) }

// errorf reports a problem with key (or with the table itself for key
// ""), prefixed by the full key name.
func (t *table) errorf(key, format string, args ...any) {
	t.p.errorAt(t.keyPath(key), "%s: %s", t.name(key), fmt.Sprintf(format, args...))
}

func (t *table) has(key string) bool {
	_, ok := t.m[key]
	return ok
}

func typeName(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	}
	return fmt.Sprintf("a %T", v)
}

// str returns the string at key, def when absent.
func (t *table) str(key, def string) (string, bool) {
	v, ok := t.m[key]
	if !ok {
		return def, false
	}
	s, ok := v.(string)
	if !ok {
		t.errorf(key, "expected a string, got %s", typeName(v))
		return def, false
	}
	return s, true
}

// strs returns the strings at key: an array of strings, or (as strongSwan
// takes comma lists) a single string.
func (t *table) strs(key string) ([]string, bool) {
	v, ok := t.m[key]
	if !ok {
		return nil, false
	}
	switch v := v.(type) {
	case string:
		return []string{v}, true
	case []any:
		out := make([]string, 0, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				t.errorf(key, "element %d: expected a string, got %s", i+1, typeName(e))
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	t.errorf(key, "expected an array of strings, got %s", typeName(v))
	return nil, false
}

// integer returns the integer at key within [lo, hi], def when absent or
// wrong.
func (t *table) integer(key string, def, lo, hi int64) int64 {
	v, ok := t.m[key]
	if !ok {
		return def
	}
	n, ok := v.(int64)
	if !ok {
		t.errorf(key, "expected an integer, got %s", typeName(v))
		return def
	}
	if n < lo || n > hi {
		t.errorf(key, "%d is out of range: expected %d to %d", n, lo, hi)
		return def
	}
	return n
}

func (t *table) boolean(key string, def bool) bool {
	v, ok := t.m[key]
	if !ok {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		t.errorf(key, "expected true or false, got %s", typeName(v))
		return def
	}
	return b
}

// duration reads "30s", "1h30m", "4h", "1d", a plain number of seconds as
// a string or integer; "0s" (or 0) disables what it times.
func (t *table) duration(key string, def time.Duration) time.Duration {
	v, ok := t.m[key]
	if !ok {
		return def
	}
	switch v := v.(type) {
	case int64:
		if v < 0 || v > int64(maxDuration/time.Second) {
			t.errorf(key, "%d seconds is out of range", v)
			return def
		}
		return time.Duration(v) * time.Second
	case string:
		d, err := parseDuration(v)
		if err != nil {
			t.errorf(key, "bad duration %q: expected e.g. \"30s\", \"15m\", \"4h\", \"1d\" or \"0s\" to disable", v)
			return def
		}
		return d
	}
	t.errorf(key, "expected a duration string such as \"30s\", got %s", typeName(v))
	return def
}

const maxDuration = 100 * 365 * 24 * time.Hour

// parseDuration takes Go's syntax, plain seconds ("3600", as strongSwan),
// and a leading days part ("1d", "2d12h").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty")
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, err
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 || d+days > maxDuration {
		return 0, fmt.Errorf("out of range")
	}
	return d + days, nil
}

// enum reads a string that must be one of choices and returns its index;
// def when absent.
func (t *table) enum(key string, def int, choices ...string) int {
	s, ok := t.str(key, "")
	if !ok {
		return def
	}
	if i := slices.Index(choices, s); i >= 0 {
		return i
	}
	t.errorf(key, "%q is not valid: expected %s", s, orList(choices))
	return def
}

// orList quotes choices as `"a", "b" or "c"`.
func orList(choices []string) string {
	q := make([]string, len(choices))
	for i, c := range choices {
		q[i] = strconv.Quote(c)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// filePath reads a file path; relative paths are relative to the folder of
// the configuration file.
func (t *table) filePath(key, def string) string {
	s, ok := t.str(key, def)
	if !ok || s == "" {
		return s
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(t.p.base, s)
	}
	return s
}

// written returns a path as the file has it (for messages: relative to
// the file, as the administrator wrote it).
func (t *table) written(key string) string {
	s, _ := t.m[key].(string)
	return s
}

// sub returns the table at key, nil when absent (or not a table, which is
// reported).
func (t *table) sub(key string) *table {
	v, ok := t.m[key]
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.errorf(key, "expected a table ([%s]), got %s", t.name(key), typeName(v))
		return nil
	}
	return &table{p: t.p, path: t.keyPath(key), m: m}
}

// subs returns every entry of t as a table, in file order; entries that
// are not tables are reported as such.
func (t *table) subs(what string) []*table {
	var out []*table
	for _, k := range t.sortedKeys() {
		v := t.m[k]
		m, ok := v.(map[string]any)
		if !ok {
			t.errorf(k, "expected a %s table ([%s]), got %s", what, t.name(k), typeName(v))
			continue
		}
		out = append(out, &table{p: t.p, path: t.keyPath(k), m: m})
	}
	return out
}

// sortedKeys returns the keys of t in file order (by line, then name).
func (t *table) sortedKeys() []string {
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		li, lj := t.p.lines.line(t.keyPath(keys[i])), t.p.lines.line(t.keyPath(keys[j]))
		if li != lj {
			return li < lj
		}
		return keys[i] < keys[j]
	})
	return keys
}

// known reports every key of t that is not in keys, with the nearest
// known key as a suggestion, or the list of what is expected.
func (t *table) known(keys ...string) {
	for _, k := range t.sortedKeys() {
		if slices.Contains(keys, k) {
			continue
		}
		where := "in [" + t.name("") + "]"
		if len(t.path) == 0 {
			where = "at the top level"
		}
		if s := suggest(k, keys); s != "" {
			t.p.errorAt(t.keyPath(k), "unknown key %q %s: did you mean %q?", k, where, s)
		} else {
			t.p.errorAt(t.keyPath(k), "unknown key %q %s: expected %s", k, where, orList(keys))
		}
	}
}

// suggest returns the known key closest to k when it is close enough to
// be a typo (edit distance at most 2, or a difference of case or plural).
func suggest(k string, keys []string) string {
	best, bestD := "", 3
	for _, c := range keys {
		if d := editDistance(strings.ToLower(k), c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" && len(k) >= 4 {
		for _, c := range keys {
			if strings.HasPrefix(c, k) || strings.HasPrefix(k, c) && len(c) >= 4 {
				return c
			}
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// validName checks a connection, child, secret or manual SA name: it is
// typed on the command line (isle up NAME/CHILD), so "/" and blanks are
// out.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isBare(s[i]) && s[i] != '.' {
			return false
		}
	}
	return true
}
