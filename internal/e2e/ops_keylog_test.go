package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/internal/netns"
	"github.com/isle-ipsec/isle/internal/testenv"
)

// TestOpsKeylog: with [gateway] keylog set, tshark decrypts a capture of
// the WAN with nothing but the files isle wrote: the IKE_AUTH exchange
// (identities in clear) and the ESP of a ping (ICVs checked).
func TestOpsKeylog(t *testing.T) {
	tshark := testenv.RequireTool(t, "tshark")
	l := startIKELab(t, "gon", ikeOpts{keylog: true})
	l.waitUp("site", 10*time.Second)
	cap, err := l.topo.Capture(netns.GR, l.topo.WANIface(netns.GR), "udp port 500 or udp port 4500 or esp")
	if err != nil {
		t.Fatal(err)
	}
	// A fresh IKE SA inside the capture, then traffic.
	if out, err := l.isle(l.left, "down", "site"); err != nil {
		t.Fatalf("isle down: %v %s", err, out)
	}
	if out, err := l.isle(l.left, "up", "site"); err != nil {
		t.Fatalf("isle up: %v %s", err, out)
	}
	l.waitUp("site", 5*time.Second)
	if err := l.topo.Ping(netns.HL, netns.HR4, 3); err != nil {
		t.Fatal(err)
	}
	pcap, err := cap.Stop()
	if err != nil {
		t.Fatal(err)
	}
	// Wireshark's personal configuration directory with the files of the
	// left gateway, read while its SAs are still installed.
	home := t.TempDir()
	wdir := filepath.Join(home, ".config", "wireshark")
	if err := os.MkdirAll(wdir, 0o700); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(l.dir, "left-keys")
	for _, f := range []string{"esp_sa", "ikev2_decryption_table"} {
		b, err := os.ReadFile(filepath.Join(keys, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(filepath.Join(keys, f)); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", f, fi.Mode().Perm())
		}
		if err := os.WriteFile(filepath.Join(wdir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) string {
		cmd := exec.Command(tshark, append([]string{"-r", pcap}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	ikeOut := run("-Y", "isakmp", "-T", "fields", "-e", "isakmp.exchangetype", "-e", "isakmp.id.data.fqdn")
	if !strings.Contains(ikeOut, "left.isle.test") || !strings.Contains(ikeOut, "right.isle.test") {
		t.Errorf("tshark did not decrypt IKE_AUTH with the keylog:\n%s", ikeOut)
	}
	espOut := run("-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE",
		"-Y", "esp", "-T", "fields", "-E", "separator=|", "-e", "esp.spi", "-e", "esp.icv_good", "-e", "icmp.type")
	var good, echo, reply int
	for _, line := range strings.Split(strings.TrimSpace(espOut), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 3 {
			continue
		}
		if f[1] == "1" || f[1] == "True" {
			good++
		}
		switch f[2] {
		case "8":
			echo++
		case "0":
			reply++
		}
	}
	t.Logf("tshark: %d ESP packets with good ICV, %d echo requests and %d replies decrypted", good, echo, reply)
	if echo < 3 || reply < 3 || good < 6 {
		t.Errorf("tshark did not decrypt the ESP with the keylog:\n%s", espOut)
	}
}
