// Package testenv lets tests state what they need from the machine (root,
// a tool, a Python module). Outside CI a missing prerequisite skips the
// test; in CI (CI=true) it fails it, so a green CI run never hides a test
// that did not run.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI, where skipping is failing.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test, or fails it in CI, because of what is missing.
func Missing(t testing.TB, what string) {
	t.Helper()
	if InCI() {
		t.Fatalf("prerequisite missing in CI: %s (run `make deps` as root)", what)
	}
	t.Skipf("prerequisite missing: %s", what)
}

// RequireRoot needs uid 0 (network namespaces, TUN devices, raw sockets).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root")
	}
}

// RequireTool needs an executable on PATH or at an absolute path; it
// returns the path found.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "tool "+name)
	}
	return p
}

// Python is Debian's interpreter, which carries python3-scapy; the first
// python3 on PATH may be another one without it.
const Python = "/usr/bin/python3"

// RequirePythonModule needs a module importable by Debian's python3.
func RequirePythonModule(t testing.TB, module string) {
	t.Helper()
	if err := exec.Command(Python, "-c", "import "+module).Run(); err != nil {
		Missing(t, "python3 module "+module+" (Debian package python3-"+module+")")
	}
}

// Short reports whether the run is `go test -short`, which leaves out the
// namespace tests; CI never runs short.
func Short() bool { return testing.Short() }
