package interop

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var tableFile = flag.String("table", "", "write the Markdown results table of this run to `FILE`")

// recorder collects the outcome of every case for the table.
var recorder struct {
	sync.Mutex
	results    []Result
	strongSwan string
}

// record registers a case: its outcome is taken when the subtest ends.
// order places it in the table (cases end in any order, groups run in
// parallel).
func record(t *testing.T, group, what string, order int) {
	start := time.Now()
	name := t.Name()
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	t.Cleanup(func() {
		r := Result{Group: group, Case: name, What: what, Outcome: Pass, Duration: time.Since(start), order: order}
		switch {
		case t.Failed():
			r.Outcome = Fail
		case t.Skipped():
			r.Outcome = Skip
		}
		recorder.Lock()
		recorder.results = append(recorder.results, r)
		recorder.Unlock()
	})
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

// isleBinary builds cmd/isle once per run, unless ISLE_E2E_BIN names a
// binary to test instead.
func isleBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ISLE_E2E_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "isle-interop-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "isle")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/isle")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	flag.Parse()
	start := time.Now()
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if *tableFile != "" {
		if err := writeTable(*tableFile, time.Since(start)); err != nil {
			fmt.Fprintln(os.Stderr, "interop: writing table:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const tableNote = "`isle run` in one namespace, charon in another, hosts behind both (internal/interop). " +
	"Every case that brings a tunnel up also checks that isle (`isle status --json`) and charon (vici) show the same " +
	"IKE and ESP SPIs, algorithms and traffic selectors, then sends pings and a byte-checked 256 KiB TCP stream each way " +
	"between the hosts and finds them counted on both daemons' CHILD_SA. \"isle-init\"/\"swan-init\": who initiates. " +
	"libipsec always encapsulates ESP in UDP 4500."

func writeTable(path string, elapsed time.Duration) error {
	recorder.Lock()
	defer recorder.Unlock()
	rev := "(unknown revision)"
	cmd := exec.Command("git", "describe", "--always", "--dirty")
	cmd.Dir = repoRoot()
	if out, err := cmd.Output(); err == nil {
		rev = strings.TrimSpace(string(out))
	}
	swanVersion := recorder.strongSwan
	if swanVersion == "" {
		swanVersion = "strongSwan (version not read: no charon ran)"
	}
	slices.SortStableFunc(recorder.results, func(a, b Result) int { return a.order - b.order })
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteTable(f, Run{StrongSwan: swanVersion, Isle: rev, Date: time.Now(), Elapsed: elapsed, Note: tableNote}, recorder.results); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
