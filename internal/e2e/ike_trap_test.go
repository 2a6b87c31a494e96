package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/internal/netns"
	"github.com/isle-ipsec/isle/internal/status"
)

// startTrapLab is startIKELab with the left gateway's children set to
// start_action = trap (the right one stays a responder): nothing is
// negotiated until a packet needs the tunnel.
func startTrapLab(t *testing.T, prefix string, o ikeOpts) *ikeLab {
	t.Helper()
	needLab(t)
	topo := netns.NewTopology(t, prefix)
	dir := t.TempDir()
	l := &ikeLab{t: t, dir: dir, topo: topo, o: o}
	l.right = &ikeGW{side: "right", node: netns.GR}
	l.left = &ikeGW{side: "left", node: netns.GL}
	for _, g := range []*ikeGW{l.right, l.left} {
		g.config = filepath.Join(dir, g.side+".toml")
		g.sock = filepath.Join(dir, g.side+".sock")
		text := o.config(topo, dir, g == l.left)
		if g == l.left {
			trapped := strings.ReplaceAll(text, `start_action = "start"`, `start_action = "trap"`)
			if trapped == text {
				t.Fatalf("left configuration has no start_action = \"start\" to turn into trap:\n%s", text)
			}
			text = trapped
		}
		if err := os.WriteFile(g.config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l.start(l.right)
	l.waitListening(l.right)
	l.start(l.left)
	l.waitListening(l.left)
	return l
}

// ikeSAs counts a gateway's IKE SAs of connection site, in any state.
func (l *ikeLab) ikeSAs(g *ikeGW) int {
	l.t.Helper()
	st, _ := l.status(g)
	n := 0
	for _, c := range st.Connections {
		if c.Name == "site" {
			n += len(c.IKESAs)
		}
	}
	return n
}

// traps lists what `isle status --json` shows armed and waiting for
// connection site, as "child(reason) local === remote".
func (l *ikeLab) traps(g *ikeGW) []string {
	l.t.Helper()
	_, raw := l.status(g)
	var st status.Status
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		l.t.Fatalf("isle status --json (%s): %v\n%s", g.side, err, raw)
	}
	var out []string
	for _, c := range st.Connections {
		if c.Name != "site" {
			continue
		}
		for _, tr := range c.Traps {
			out = append(out, tr.Name+"("+tr.Reason+") "+strings.Join(tr.LocalTS, " ")+" === "+strings.Join(tr.RemoteTS, " "))
		}
	}
	return out
}

// expectIdle checks that no IKE SA exists on either side and the left
// gateway has not initiated since it started.
func (l *ikeLab) expectIdle(when string) {
	l.t.Helper()
	if n, m := l.ikeSAs(l.left), l.ikeSAs(l.right); n != 0 || m != 0 {
		_, ls := l.status(l.left)
		_, rs := l.status(l.right)
		l.t.Fatalf("%s: IKE SAs left %d, right %d, want none\nleft: %s\nright: %s", when, n, m, ls, rs)
	}
}

// TestTrapStart: with start_action = trap the left gateway negotiates
// nothing until hl pings hr; the ping that hits the trap starts IKE
// (it and maybe a few more are lost while it runs), then pings pass and
// `isle status` shows both sides' SAs.
func TestTrapStart(t *testing.T) {
	l := startTrapLab(t, "tpa", ikeOpts{})
	l.waitLog(l.left, "trap armed", 5*time.Second)
	// Time in which start_action = start would long have finished.
	time.Sleep(2 * time.Second)
	l.expectIdle("before any packet")
	if n := countLog(l.left, "msg=initiating"); n != 0 {
		t.Errorf("left initiated %d times without a packet", n)
	}
	if out, err := l.topo.Command(netns.GL, "ip", "route", "get", netns.HR4).CombinedOutput(); err != nil || !strings.Contains(string(out), "dev isle0") {
		t.Errorf("the trap does not route %s into isle0: %v\n%s", netns.HR4, err, out)
	}

	traps := l.traps(l.left)
	if len(traps) != 1 || !strings.HasPrefix(traps[0], "lan(start_action) ") {
		t.Errorf("left status before any packet: traps %q, want lan armed by start_action", traps)
	}
	if out, err := l.isle(l.left, "status"); err != nil || !strings.Contains(out, "  lan: TRAPPED (start_action), ") {
		t.Errorf("left isle status does not show the trap: %v\n%s", err, out)
	}
	if traps := l.traps(l.right); len(traps) != 0 {
		t.Errorf("right (a responder) shows traps %q", traps)
	}

	took := l.waitPing(10 * time.Second)
	t.Logf("first ping answered %v after the first one was sent", took)
	l.waitLog(l.left, "trap: packet without an SA, negotiating", time.Second)
	if err := l.topo.Ping(netns.HL, netns.HR4, 3); err != nil {
		t.Fatalf("pings after the trap fired: %v", err)
	}
	if err := l.topo.Ping(netns.HL, netns.HR6, 3); err != nil {
		// IPv6 comes up in the same CHILD_SA as IPv4.
		t.Fatalf("IPv6 pings after the trap fired: %v", err)
	}
	for _, g := range []*ikeGW{l.left, l.right} {
		if len(l.installed(g, "site")) != 1 {
			_, raw := l.status(g)
			t.Errorf("%s status: want one installed CHILD_SA\n%s", g.side, raw)
		}
	}
	st, raw := l.status(l.left)
	if s := st.Connections[0].IKESAs[0]; !s.Initiator || s.State != "ESTABLISHED" {
		t.Errorf("left is not the initiator of an established IKE SA: %s", raw)
	}
	if traps := l.traps(l.left); len(traps) != 0 {
		t.Errorf("left status shows traps %q while the CHILD_SA is installed", traps)
	}
	if n := l.ikeSAs(l.left); n != 1 {
		t.Errorf("left has %d IKE SAs after the trap, want 1 (repeats must not initiate again)", n)
	}
}

// TestTrapClose: close_action = trap: when the peer deletes the CHILD_SA
// nothing is negotiated until the next packet, which brings it back with
// a CREATE_CHILD_SA in the same IKE SA.
func TestTrapClose(t *testing.T) {
	l := startIKELab(t, "tpb", ikeOpts{leftChild: map[string]string{"lan": "close_action = \"trap\"\n"}})
	l.waitUp("site", 10*time.Second)
	if err := l.topo.Ping(netns.HL, netns.HR4, 2); err != nil {
		t.Fatal(err)
	}
	st, _ := l.status(l.left)
	spiI := st.Connections[0].IKESAs[0].SPIi
	if out, err := l.isle(l.right, "down", "site/lan"); err != nil {
		t.Fatalf("right: isle down site/lan: %v %s", err, out)
	}
	l.waitLog(l.left, "trap armed", 5*time.Second)
	time.Sleep(time.Second)
	if spis := l.installed(l.left, "site"); len(spis) != 0 {
		t.Fatalf("left re-negotiated without a packet: CHILD_SAs %v", spis)
	}
	l.waitPing(10 * time.Second)
	if len(l.installed(l.left, "site")) != 1 || len(l.installed(l.right, "site")) != 1 {
		_, ls := l.status(l.left)
		t.Fatalf("CHILD_SA not back after the trap fired:\n%s", ls)
	}
	st, raw := l.status(l.left)
	if got := st.Connections[0].IKESAs[0].SPIi; got != spiI {
		t.Errorf("a new IKE SA (%s, was %s) instead of a CREATE_CHILD_SA: %s", got, spiI, raw)
	}
}

// TestTrapDPD: dpd_action = trap: the peer dies, its SAs are cleared and
// nothing is initiated while it stays dead; once it is back, the next
// packet negotiates a new IKE SA.
func TestTrapDPD(t *testing.T) {
	l := startIKELab(t, "tpc", ikeOpts{dpd: "1s", dpdAction: "trap", retransmit: "300ms,2"})
	l.waitUp("site", 10*time.Second)
	l.kill9(l.right)
	l.waitLog(l.left, "CHILD_SA cleared", 15*time.Second)
	l.waitLog(l.left, "trap armed", 2*time.Second)
	time.Sleep(time.Second)
	if n := countLog(l.left, "msg=initiating"); n != 1 {
		t.Errorf("dpd_action = trap: %d initiations before a packet, want only the first", n)
	}
	if n := l.ikeSAs(l.left); n != 0 {
		_, raw := l.status(l.left)
		t.Errorf("left keeps an IKE SA after the dead peer: %s", raw)
	}
	l.start(l.right)
	l.waitListening(l.right)
	l.waitPing(15 * time.Second)
	if len(l.installed(l.left, "site")) != 1 || len(l.installed(l.right, "site")) != 1 {
		_, ls := l.status(l.left)
		t.Fatalf("tunnel not back after the trap fired:\n%s", ls)
	}
}
