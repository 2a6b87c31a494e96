// Package interop holds isle's interoperability suite with strongSwan: the
// real isle binary (`isle run`) in one gateway namespace of the netns lab
// against Debian's charon (kernel-libipsec) in the other, with hosts behind
// both exchanging pings and byte-checked TCP streams through the tunnel.
// Each case also checks that both daemons describe the same SAs (SPIs,
// algorithms, selectors), from `isle status --json` and charon's vici.
//
// The tests are in the _test files; this file only turns their outcomes
// into the Markdown table README shows, so that the table is always the
// output of a real run:
//
//	go test ./internal/interop -run 'TestMatrix|TestNegative' -args -table=results.md
package interop

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Outcome is how one case ended.
type Outcome string

const (
	Pass Outcome = "pass"
	Fail Outcome = "FAIL"
	Skip Outcome = "skipped"
)

// Result is one case of the suite.
type Result struct {
	Group    string // "proposals", "auth", ...
	Case     string // the subtest's name
	What     string // what the case proves, one line
	Outcome  Outcome
	Duration time.Duration

	order int // where the suite declared the case
}

// Run describes the run the results come from.
type Run struct {
	StrongSwan string // e.g. "strongSwan 5.9.8 (charon, kernel-libipsec)"
	Isle       string // e.g. a git revision
	Date       time.Time
	Elapsed    time.Duration // the whole suite's wall time
	Note       string        // a paragraph between the summary and the table
}

// WriteTable writes the results as a Markdown table, grouped and in the
// order the groups first appear, with a header line naming the peer.
func WriteTable(w io.Writer, run Run, results []Result) error {
	var groups []string
	for _, r := range results {
		if !slices.Contains(groups, r.Group) {
			groups = append(groups, r.Group)
		}
	}
	counts := map[Outcome]int{}
	for _, r := range results {
		counts[r.Outcome]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Interoperability with %s, isle %s, run %s (%s wall time): %d passed, %d failed, %d skipped.\n\n",
		run.StrongSwan, run.Isle, run.Date.UTC().Format("2006-01-02 15:04 MST"), run.Elapsed.Round(time.Second),
		counts[Pass], counts[Fail], counts[Skip])
	if run.Note != "" {
		b.WriteString(run.Note + "\n\n")
	}
	b.WriteString("| group | case | what is checked | result | time |\n|---|---|---|---|---|\n")
	for _, g := range groups {
		for _, r := range results {
			if r.Group != g {
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %.1f s |\n", cell(r.Group), cell(r.Case), cell(r.What),
				r.Outcome, r.Duration.Seconds())
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell keeps a table cell on one line and its pipes from splitting it.
func cell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}
