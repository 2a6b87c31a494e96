package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a configuration file, at a line of it.
type Error struct {
	File string // the file name as it was given to Load or Parse
	Line int    // 1-based; 0 when the problem concerns the file as a whole
	Msg  string
}

// Error formats the problem as FILE:LINE: message (FILE: message without
// a line), the form compilers use and editors jump to.
func (e Error) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Errors is every problem Load or Parse found, sorted by line. As an error
// it prints one problem per line.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sorted orders problems by line and keeps the order they were found in
// within a line, so the output is stable for golden tests.
func (es Errors) sorted() Errors {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
	return es
}
