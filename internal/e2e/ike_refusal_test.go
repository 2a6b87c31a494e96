package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/internal/netns"
)

// TestIKERefusals: a wrong pre-shared key and proposals without a common
// algorithm bring nothing up, and the logs say why (the reason, both
// offers) without ever printing a key.
func TestIKERefusals(t *testing.T) {
	for _, tc := range []struct {
		name, prefix string
		o            ikeOpts
		left, right  []string // what each side's log must say
	}{
		{"wrong-psk", "gkm", ikeOpts{leftPSK: "not the right key"},
			[]string{"AUTHENTICATION_FAILED"}, []string{"pre-shared keys differ"}},
		{"no-common-proposal", "gkn", ikeOpts{proposals: "aes256gcm16-prfsha384-ecp384", rightProps: "aes128-sha256-modp2048"},
			[]string{"NO_PROPOSAL_CHOSEN"}, []string{"AES_GCM_16_256", "AES_CBC_128"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startIKELab(t, tc.prefix, tc.o)
			for _, c := range []struct {
				g    *ikeGW
				want []string
			}{{l.left, tc.left}, {l.right, tc.right}} {
				for _, w := range c.want {
					l.waitLog(c.g, w, 5*time.Second)
				}
			}
			if n := len(l.installed(l.left, "site")) + len(l.installed(l.right, "site")); n != 0 {
				t.Errorf("%d CHILD_SAs installed", n)
			}
			if n, _ := l.topo.PingCount(netns.HL, netns.HR4, 1, 10*time.Millisecond); n != 0 {
				t.Error("ping answered without a tunnel")
			}
			for _, g := range []*ikeGW{l.left, l.right} {
				for _, secret := range []string{"a pre-shared key for the isle e2e tests", "not the right key"} {
					if strings.Contains(g.proc.Log(), secret) {
						t.Errorf("%s logged a pre-shared key", g.side)
					}
				}
			}
			t.Logf("left says: %s", grepLine(l.left.proc.Log(), tc.left[0]))
			t.Logf("right says: %s", grepLine(l.right.proc.Log(), tc.right[0]))
		})
	}
}

func grepLine(log, s string) string {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

// TestIKESoftLimits: rekey_bytes makes the CHILD_SA ask for its rekey
// (sa soft limit → ike.Manager.RekeyChild) while a TCP transfer runs,
// and the transfer's bytes all arrive.
func TestIKESoftLimits(t *testing.T) {
	l := startIKELab(t, "gko", ikeOpts{childExtra: "rekey_bytes = 2000000\n"})
	l.waitUp("site", 10*time.Second)
	first := l.installed(l.left, "site")
	if _, err := l.topo.TCPTransfer(netns.HL, netns.HR, netns.HR4, 16<<20); err != nil {
		t.Fatal(err)
	}
	n := countLog(l.left, "soft limit reached") + countLog(l.right, "soft limit reached")
	rekeys := countLog(l.left, "CHILD_SA rekeyed")
	t.Logf("16 MiB through rekey_bytes = 2000000: %d soft-limit events, %d rekeys", n, rekeys)
	if n < 3 || rekeys < 3 {
		t.Errorf("%d soft-limit events and %d rekeys for 8 times the byte limit", n, rekeys)
	}
	if now := l.installed(l.left, "site"); len(now) != 1 || now[0] == first[0] {
		t.Errorf("CHILD_SAs %v → %v", first, now)
	}
	if strings.Contains(l.left.proc.Log(), "CHILD_SA expired") {
		t.Error("an SA reached its hard byte limit before being replaced")
	}
}

// TestOpsSIGTERM: a gateway stopped with SIGTERM deletes its SAs with the
// peer first, which then holds none.
func TestOpsSIGTERM(t *testing.T) {
	l := startIKELab(t, "gop", ikeOpts{})
	l.waitUp("site", 10*time.Second)
	if err := l.left.proc.Stop(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, raw := l.status(l.right)
		if len(st.Connections[0].IKESAs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the peer still has SAs after SIGTERM: %s", raw)
		}
	}
	if !strings.Contains(l.left.proc.Log(), "IKE_SA deleted: stopping") {
		t.Error("no DELETE logged at SIGTERM")
	}
}
