package netns

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a command running in the background inside a namespace.
type Process struct {
	Cmd     *exec.Cmd
	LogPath string // its stdout and stderr

	done    chan struct{}
	waitErr error
	stop    sync.Once
}

// logTail is how much of a log is printed when a test fails.
const logTail = 64 << 10

// KeepLogsEnv names a directory where, when set, logs and captures are
// kept after the tests (for a CI run to look at); otherwise they go with
// the test's temporary files.
const KeepLogsEnv = "ISLE_TEST_LOGS"

// LogDir is where logs named without a directory go: one directory per
// topology.
func (topo *Topology) LogDir() string {
	if topo.logDir == "" {
		topo.logDir = TestDir(topo.t, topo.Prefix)
	}
	return topo.logDir
}

// TestDir makes a directory for a test's files: under $ISLE_TEST_LOGS and
// kept if that is set, else a temporary one removed at cleanup. Its path is
// short enough for unix sockets.
func TestDir(t testing.TB, name string) string {
	t.Helper()
	keep := os.Getenv(KeepLogsEnv)
	if keep == "" {
		dir, err := os.MkdirTemp("", name+"-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	if err := os.MkdirAll(keep, 0o755); err != nil {
		t.Fatal(err)
	}
	safe := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	dir, err := os.MkdirTemp(keep, safe+"-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// Start runs argv in the background inside node's namespace, its output
// going to logfile (a bare name or "" is placed in LogDir). At cleanup the
// process is stopped (SIGTERM, then SIGKILL) and waited for, and when the
// test failed its log is printed.
func (topo *Topology) Start(t testing.TB, node Node, logfile string, argv ...string) *Process {
	t.Helper()
	if logfile == "" {
		logfile = filepath.Base(argv[0]) + "-" + string(node) + ".log"
	}
	if !strings.Contains(logfile, "/") {
		logfile = filepath.Join(topo.LogDir(), logfile)
	}
	p, err := StartCommand(topo.Command(node, argv...), logfile)
	if err != nil {
		t.Fatalf("starting %s in %s: %v", strings.Join(argv, " "), topo.NS(node), err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("log of %q in %s (%s):\n%s", strings.Join(argv, " "), topo.NS(node), logfile, ReadTail(logfile, logTail))
		}
	})
	return p
}

// StartCommand starts cmd in its own process group with its output in
// logfile. The caller stops it with Stop.
func StartCommand(cmd *exec.Cmd, logfile string) (*Process, error) {
	log, err := os.Create(logfile)
	if err != nil {
		return nil, fmt.Errorf("creating log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	// Its own group, so that Stop reaches the children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	p := &Process{Cmd: cmd, LogPath: logfile, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to end by itself, at most timeout.
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %v", p.Cmd.Path, timeout)
	}
}

// Stop ends the process group (SIGTERM, SIGKILL after 3s) and waits for
// it. It may be called more than once; it returns how the process ended,
// nil if it was still running and stopped when asked.
func (p *Process) Stop() error {
	stoppedByUs := false
	p.stop.Do(func() {
		if p.Exited() {
			return
		}
		stoppedByUs = true
		pgid := p.Cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
	})
	<-p.done
	if stoppedByUs {
		return nil
	}
	var exitErr *exec.ExitError
	if errors.As(p.waitErr, &exitErr) && exitErr.Sys().(syscall.WaitStatus).Signaled() {
		return nil
	}
	return p.waitErr
}

// Log returns what the process has written so far.
func (p *Process) Log() string { return ReadTail(p.LogPath, logTail) }

// ReadTail returns at most the last max bytes of a file, or a note saying
// why it could not.
func ReadTail(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	prefix := ""
	if st.Size() > max {
		if _, err := f.Seek(st.Size()-max, io.SeekStart); err != nil {
			return fmt.Sprintf("(cannot read %s: %v)", path, err)
		}
		prefix = fmt.Sprintf("(… first %d bytes left out)\n", st.Size()-max)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return prefix + string(b)
}
