package e2e

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/ike"
	"github.com/isle-ipsec/isle/internal/netns"
	"github.com/isle-ipsec/isle/policy"
	"github.com/isle-ipsec/isle/sa"
)

// spoofedInits makes n well-formed IKE_SA_INIT requests (each its own SPI,
// nonce and X25519 share), as a flood of would-be initiators sends them.
func spoofedInits(t *testing.T, n int) []byte {
	t.Helper()
	props, err := sa.ParseProposal(sa.ProtoIKE, "aes128gcm16-prfsha256-x25519")
	if err != nil {
		t.Fatal(err)
	}
	esp, err := sa.ParseProposal(sa.ProtoESP, "aes128gcm16")
	if err != nil {
		t.Fatal(err)
	}
	ts, err := policy.ParseSelector("10.9.0.0/24")
	if err != nil {
		t.Fatal(err)
	}
	cfg := ike.Config{LocalID: ike.FQDN("flood.example"), PSK: []byte("x"), IKEProposals: props,
		Children: []ike.ChildConfig{{Name: "c", Proposals: esp, Mode: sa.ModeTunnel,
			LocalTS: []policy.Selector{ts}, RemoteTS: []policy.Selector{ts}}}}
	var out []byte
	for range n {
		var msg []byte
		s, err := ike.NewInitiator(cfg, func(b []byte) error { msg = append([]byte(nil), b...); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		out = append(out, hex.EncodeToString(msg)...)
		out = append(out, '\n')
	}
	return out
}

// TestIKEFlood: while 4000 spoofed IKE_SA_INITs (from 240 addresses off the WAN) and
// 12000 garbage datagrams hit the responder's ports 500 and 4500, the
// established tunnel keeps carrying pings, and a new IKE SA from the real
// peer (isle down + isle up during the flood) still comes up: the
// responder asks for cookies, which spoofers cannot return.
func TestIKEFlood(t *testing.T) {
	l := startIKELab(t, "gkl", ikeOpts{rightAny: true})
	l.waitUp("site", 10*time.Second)
	before := l.installed(l.right, "site")
	// The spoofed sources are "on the internet": answers to them go back
	// through gl, which drops them. (On-link spoofed addresses would
	// instead fill the socket's send buffer with packets waiting for ARP.)
	l.topo.MustRun(netns.GR, "ip", "route", "add", "203.0.113.0/24", "via", netns.WanGL4)
	inits := filepath.Join(l.dir, "inits.hex")
	if err := os.WriteFile(inits, spoofedInits(t, 4000), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(repoRoot(t), "internal", "e2e", "testdata", "ike_flood.py")
	flood := l.topo.Command(netns.GL, "timeout", "60", "/usr/bin/python3", script, netns.WanGR4, inits, "40")
	floodDone := make(chan string, 1)
	go func() {
		out, err := flood.CombinedOutput()
		if err != nil {
			out = append(out, []byte(err.Error())...)
		}
		floodDone <- strings.TrimSpace(string(out))
	}()
	// Let the flood build up, then check the tunnel and a new negotiation.
	time.Sleep(1500 * time.Millisecond)
	n, err := l.topo.PingCount(netns.HL, netns.HR4, 10, 100*time.Millisecond)
	// The flood's datagrams share the receiving CPU's queues with the
	// tunnel's on this small machine: one lost ping is load, not a
	// broken tunnel (which would lose them all).
	if err != nil || n < 8 {
		t.Errorf("established tunnel under the flood: %d of 10 pings: %v", n, err)
	}
	t.Logf("established tunnel under the flood: %d of 10 pings answered", n)
	if now := l.installed(l.right, "site"); strings.Join(now, ",") != strings.Join(before, ",") {
		t.Errorf("the responder's CHILD_SA changed under the flood: %v → %v", before, now)
	}
	if out, err := l.isle(l.left, "down", "site"); err != nil {
		t.Fatalf("isle down: %v: %s", err, out)
	}
	start := time.Now()
	if out, err := l.isle(l.left, "up", "site"); err != nil {
		t.Fatalf("isle up: %v: %s", err, out)
	}
	for len(l.installed(l.left, "site")) == 0 {
		if time.Since(start) > 20*time.Second {
			_, rs, _ := l.tryStatus(l.right)
			t.Fatalf("new IKE SA not up during the flood\nright: %s", rs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("new IKE SA up %v after isle up, during the flood", time.Since(start))
	select {
	case out := <-floodDone:
		t.Fatalf("the flood was over before the new IKE SA came up (%s): make it longer", out)
	default:
	}
	if err := l.topo.Ping(netns.HL, netns.HR4, 3); err != nil {
		t.Fatal(err)
	}
	out := <-floodDone
	sent, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("flood sender: %s", out)
	}
	t.Logf("flood: %d datagrams sent", sent)
	if l.right.proc.Exited() || l.left.proc.Exited() {
		t.Fatal("a gateway died under the flood")
	}
	if err := l.topo.Ping(netns.HL, netns.HR4, 3); err != nil {
		t.Fatal(err)
	}
}
