package interop

import (
	"strings"
	"testing"
	"time"
)

func TestWriteTable(t *testing.T) {
	run := Run{StrongSwan: "strongSwan 5.9.8", Isle: "abc123", Date: time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC), Elapsed: 90 * time.Second}
	results := []Result{
		{Group: "auth", Case: "psk", What: "a|b", Outcome: Pass, Duration: 1500 * time.Millisecond},
		{Group: "rekey", Case: "child", What: "x", Outcome: Fail, Duration: time.Second},
		{Group: "auth", Case: "rsa", What: "y\nz", Outcome: Skip},
	}
	var b strings.Builder
	if err := WriteTable(&b, run, results); err != nil {
		t.Fatal(err)
	}
	want := "Interoperability with strongSwan 5.9.8, isle abc123, run 2026-11-25 17:00 UTC (1m30s wall time): 1 passed, 1 failed, 1 skipped.\n\n" +
		"| group | case | what is checked | result | time |\n|---|---|---|---|---|\n" +
		"| auth | psk | a\\|b | pass | 1.5 s |\n" +
		"| auth | rsa | y z | skipped | 0.0 s |\n" +
		"| rekey | child | x | FAIL | 1.0 s |\n"
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}
