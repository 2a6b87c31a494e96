// Package dist holds what an installation needs besides the binary: the
// systemd unit and the sample configuration. Its tests keep both in step
// with the code.
package dist

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/isle-ipsec/isle/internal/config"
	"github.com/isle-ipsec/isle/internal/testenv"
)

// TestSampleConfig: the sample passes `isle check` (config.Load) and uses
// the runtime directory the unit creates.
func TestSampleConfig(t *testing.T) {
	cfg, err := config.Load("isle.toml")
	if err != nil {
		t.Fatalf("isle check -c dist/isle.toml:\n%v", err)
	}
	if cfg.Gateway.Control != "/run/isle/isle.sock" {
		t.Errorf("control socket %q is not in the unit's RuntimeDirectory /run/isle", cfg.Gateway.Control)
	}
	if len(cfg.Connections) != 1 || len(cfg.Manual) != 0 {
		t.Errorf("%d connections, %d manual SAs; want the one commented example", len(cfg.Connections), len(cfg.Manual))
	}
	if cfg.Gateway.Keylog != "" {
		t.Error("the sample must not write keys")
	}
}

// unit reads isle.service into key → values (keys may repeat).
func unit(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("isle.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Errorf("not KEY=VALUE: %q", line)
			}
			m[section+"."+k] = append(m[section+"."+k], v)
		}
	}
	return m
}

func TestUnit(t *testing.T) {
	u := unit(t)
	for key, want := range map[string]string{
		"Service.Type":                  "simple",
		"Service.ExecStart":             "/usr/local/bin/isle run -c /etc/isle/isle.toml",
		"Service.ExecReload":            "/bin/kill -HUP $MAINPID",
		"Service.RuntimeDirectory":      "isle",
		"Service.CapabilityBoundingSet": "CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE",
		"Service.AmbientCapabilities":   "CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE",
		"Service.DeviceAllow":           "/dev/net/tun rw",
		"Service.NoNewPrivileges":       "yes",
		"Install.WantedBy":              "multi-user.target",
	} {
		if got := u[key]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	// Options that would take the TUN device or netlink away.
	if v := u["Service.PrivateDevices"]; len(v) > 0 && v[0] == "yes" {
		t.Error("PrivateDevices=yes hides /dev/net/tun")
	}
	if v := u["Service.PrivateNetwork"]; len(v) > 0 && v[0] == "yes" {
		t.Error("PrivateNetwork=yes cuts the gateway off the network")
	}
	if fams := strings.Join(u["Service.RestrictAddressFamilies"], " "); !strings.Contains(fams, "AF_NETLINK") || !strings.Contains(fams, "AF_UNIX") {
		t.Errorf("RestrictAddressFamilies=%s: routes need AF_NETLINK, the control socket AF_UNIX", fams)
	}
}

// TestUnitVerifies runs systemd-analyze verify on the unit, with the
// binary it names built from this tree, and the unit's own check command.
func TestUnitVerifies(t *testing.T) {
	analyze := testenv.RequireTool(t, "systemd-analyze")
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "isle")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/isle").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The unit's ExecStartPre, on the sample.
	if out, err := exec.Command(bin, "check", "-c", "isle.toml").CombinedOutput(); err != nil || string(out) != "isle.toml: ok (1 connection, 0 manual SAs)\n" {
		t.Errorf("isle check -c isle.toml: %v %q", err, out)
	}
	b, err := os.ReadFile("isle.service")
	if err != nil {
		t.Fatal(err)
	}
	svc := filepath.Join(dir, "isle.service")
	if err := os.WriteFile(svc, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/isle", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", svc).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
