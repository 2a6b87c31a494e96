package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/internal/netns"
)

// TestIKEUp: two gateways negotiate with IKEv2 (PSK, then certificates)
// and carry ping and byte-checked TCP, IPv4 and IPv6 inside.
func TestIKEUp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix string
		o      ikeOpts
	}{
		{"psk", "gka", ikeOpts{}},
		{"cert", "gkb", ikeOpts{cert: true}},
		{"psk-aes-cbc-sha256-modp2048", "gkc", ikeOpts{proposals: "aes256-sha256-modp2048", espProposal: "aes128-sha256"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startIKELab(t, tc.prefix, tc.o)
			took := l.waitUp("site", 10*time.Second)
			// The negotiation itself, by the initiator's log: from
			// "initiating" to the CHILD_SA installed.
			neg := logTime(t, l.left, `msg="CHILD_SA up"`).Sub(logTime(t, l.left, "msg=initiating"))
			t.Logf("IKE_SA_INIT + IKE_AUTH and CHILD_SA installed in %v (%v from the initiator's start to both status reports)", neg, took)
			if neg > 500*time.Millisecond {
				t.Errorf("negotiation took %v, want well under a second", neg)
			}
			if err := l.topo.Ping(netns.HL, netns.HR4, 3); err != nil {
				t.Fatal(err)
			}
			if err := l.topo.Ping(netns.HL, netns.HR6, 3); err != nil {
				t.Fatal(err)
			}
			res, err := l.topo.TCPTransfer(netns.HL, netns.HR, netns.HR4, 4<<20)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("TCP 4 MiB hl → hr byte-checked: %.0f Mbit/s", res.Mbps())
			st, raw := l.status(l.left)
			s := st.Connections[0].IKESAs[0]
			if !s.Initiator || s.Children[0].PacketsOut == nil || *s.Children[0].PacketsOut == 0 {
				t.Errorf("left status: %s", raw)
			}
		})
	}
}

// TestIKEChildRekeyNoLoss: the CHILD_SA is rekeyed every second (by
// either side, whichever timer fires first)
// under a continuous ping of 50 per second for 22 s (ten times the
// brief's 5/s, so that a gap of a few milliseconds would show): at least
// 20 consecutive rekeys, and not one ping is lost.
func TestIKEChildRekeyNoLoss(t *testing.T) {
	l := startIKELab(t, "gkd", ikeOpts{childRekey: "1s"})
	l.waitUp("site", 10*time.Second)
	first := l.installed(l.left, "site")
	const count = 1100
	_, got := l.continuousPing(count, 20*time.Millisecond)
	n, err := got()
	if err != nil {
		t.Fatal(err)
	}
	rekeys := countLog(l.left, "CHILD_SA rekeyed")
	t.Logf("%d CHILD_SA rekeys in %v of ping; %d of %d pings answered", rekeys, count*20*time.Millisecond, n, count)
	if n != count {
		t.Errorf("lost %d pings during rekeys", count-n)
	}
	if rekeys < 20 {
		t.Errorf("only %d rekeys in 22 s with rekey_time 1s", rekeys)
	}
	if now := l.installed(l.left, "site"); len(now) != 1 || now[0] == first[0] {
		t.Errorf("installed CHILD_SAs now %v, first %v", now, first)
	}
	for _, g := range []*ikeGW{l.left, l.right} {
		st, _ := l.status(g)
		if d := st.Gateway.Drops; d["unknown_spi"]+d["replay"]+d["expired"]+d["auth_failed"] != 0 {
			t.Errorf("%s dropped ESP during rekeys: %v", g.side, d)
		}
	}
	if retired := countLog(l.left, "old inbound SA retired"); retired < rekeys-2 {
		t.Errorf("%d rekeys but only %d old inbound SAs retired", rekeys, retired)
	}
}

// TestIKESARekeyNoLoss: the IKE SA is rekeyed every 2 s under a
// continuous ping; the CHILD_SA moves to each new IKE SA and carries on.
func TestIKESARekeyNoLoss(t *testing.T) {
	l := startIKELab(t, "gke", ikeOpts{ikeRekey: "2s", childRekey: "5s"})
	l.waitUp("site", 10*time.Second)
	st, _ := l.status(l.left)
	firstSPI := st.Connections[0].IKESAs[0].SPIi
	const count = 50
	_, got := l.continuousPing(count, 200*time.Millisecond)
	n, err := got()
	if err != nil {
		t.Fatal(err)
	}
	rekeys := countLog(l.left, "IKE_SA rekeyed")
	t.Logf("%d IKE_SA rekeys (and %d CHILD_SA rekeys) in 10 s; %d of %d pings answered", rekeys, countLog(l.left, "CHILD_SA rekeyed"), n, count)
	if n != count {
		t.Errorf("lost %d pings", count-n)
	}
	if rekeys < 3 {
		t.Errorf("only %d IKE_SA rekeys in 10 s with rekey_time 2s", rekeys)
	}
	st, raw := l.status(l.left)
	if s := st.Connections[0].IKESAs; len(s) != 1 || s[0].SPIi == firstSPI || s[0].State != "ESTABLISHED" || len(s[0].Children) != 1 {
		t.Errorf("after IKE_SA rekeys: %s", raw)
	}
	if err := l.topo.Ping(netns.HL, netns.HR6, 2); err != nil {
		t.Fatal(err)
	}
}

// TestIKEPeerRestart: a gateway killed with SIGKILL (no DELETE sent) and
// started again gets its tunnel back by itself: the initiator with
// INITIAL_CONTACT (the responder drops the old SAs), the responder
// because the initiator's dead peer detection restarts the IKE SA.
func TestIKEPeerRestart(t *testing.T) {
	l := startIKELab(t, "gkf", ikeOpts{dpd: "1s", dpdAction: "restart", retransmit: "300ms,2"})
	l.waitUp("site", 10*time.Second)

	l.kill9(l.left)
	l.start(l.left)
	took := l.waitPing(10 * time.Second)
	t.Logf("initiator killed and restarted: tunnel back %v after the restart", took)
	for deadline := time.Now().Add(5 * time.Second); len(l.installed(l.right, "site")) != 1; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			_, rs := l.status(l.right)
			t.Fatalf("responder keeps stale CHILD_SAs: %s", rs)
		}
	}

	l.kill9(l.right)
	l.start(l.right)
	took = l.waitPing(15 * time.Second)
	t.Logf("responder killed and restarted: tunnel back %v after the restart (dpd_delay 1s, retransmit 300ms x2)", took)
	if err := l.topo.Ping(netns.HL, netns.HR4, 3); err != nil {
		t.Fatal(err)
	}
	if n := len(l.installed(l.left, "site")); n != 1 {
		t.Errorf("initiator has %d CHILD_SAs installed", n)
	}
}

// TestIKEDeadPeer: the peer disappears; dead peer detection finds it and
// dpd_action = clear removes the IKE SA and the CHILD_SA (traffic to the
// far LAN is no longer sent into a dead tunnel).
func TestIKEDeadPeer(t *testing.T) {
	l := startIKELab(t, "gkg", ikeOpts{dpd: "1s", dpdAction: "clear", retransmit: "300ms,2"})
	l.waitUp("site", 10*time.Second)
	l.kill9(l.right)
	start := time.Now()
	for {
		st, raw := l.status(l.left)
		if len(st.Connections) == 1 && len(st.Connections[0].IKESAs) == 0 && len(l.installed(l.left, "site")) == 0 {
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("dead peer not cleared: %s", raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("dead peer detected and its SAs cleared %v after it died", time.Since(start))
	l.waitLog(l.left, "CHILD_SA cleared", 3*time.Second)
	time.Sleep(time.Second)
	if n := countLog(l.left, "msg=initiating"); n != 1 {
		t.Errorf("dpd_action = clear: %d initiations, want only the first", n)
	}
}

// TestIKEPaths: the negotiation completes and the tunnel carries traffic
// over 10% random loss on the WAN (retransmissions), with the initiator
// behind a NAT (NAT-T: IKE moves to port 4500, ESP in UDP), with forced
// encapsulation, and over IPv6.
func TestIKEPaths(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix string
		o      ikeOpts
		encap  bool
	}{
		{"loss-10pct", "gkh", ikeOpts{loss: 10, retransmit: "500ms,8"}, false},
		{"nat", "gki", ikeOpts{nat: true}, true},
		{"encap", "gkj", ikeOpts{encap: true}, true},
		{"ipv6", "gkk", ikeOpts{outer6: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startIKELab(t, tc.prefix, tc.o)
			took := l.waitUp("site", 30*time.Second)
			t.Logf("up %v after the initiator started", took)
			if tc.o.loss > 0 {
				// Three more negotiations from scratch over the lossy path.
				for i := range 3 {
					if out, err := l.isle(l.left, "down", "site"); err != nil {
						t.Fatalf("isle down: %v %s", err, out)
					}
					for deadline := time.Now().Add(10 * time.Second); len(l.installed(l.left, "site")) != 0; time.Sleep(50 * time.Millisecond) {
						if time.Now().After(deadline) {
							t.Fatal("isle down left the CHILD_SA")
						}
					}
					start := time.Now()
					if out, err := l.isle(l.left, "up", "site"); err != nil {
						t.Fatalf("isle up: %v %s", err, out)
					}
					for deadline := time.Now().Add(30 * time.Second); len(l.installed(l.left, "site")) == 0; time.Sleep(50 * time.Millisecond) {
						if time.Now().After(deadline) {
							_, raw := l.status(l.left)
							t.Fatalf("negotiation %d over 10%% loss did not complete: %s", i+2, raw)
						}
					}
					t.Logf("negotiation %d over 10%% loss: %v", i+2, time.Since(start))
				}
				// Ping over a lossy path: most, not all, come back.
				if n, err := l.topo.PingCount(netns.HL, netns.HR4, 20, 50*time.Millisecond); err != nil || n < 10 {
					t.Fatalf("%d of 20 pings over 10%% loss: %v", n, err)
				}
				if err := l.topo.SetLoss(0); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.topo.Ping(netns.HL, netns.HR4, 3); err != nil {
				t.Fatal(err)
			}
			if err := l.topo.Ping(netns.HR, netns.HL6, 3); err != nil {
				t.Fatal(err)
			}
			if _, err := l.topo.TCPTransfer(netns.HL, netns.HR, netns.HR4, 1<<20); err != nil {
				t.Fatal(err)
			}
			for _, g := range []*ikeGW{l.left, l.right} {
				st, raw := l.status(g)
				s := st.Connections[0].IKESAs[0]
				if s.Children[0].Encap != tc.encap {
					t.Errorf("%s: encap %v, want %v: %s", g.side, s.Children[0].Encap, tc.encap, raw)
				}
				wantPort := ":500"
				if tc.encap {
					wantPort = ":4500"
				}
				if tc.o.nat && g == l.right {
					wantPort = "" // the NAT picked the port
				}
				if !strings.HasSuffix(s.Local, ":500") && !strings.HasSuffix(s.Local, ":4500") || !strings.Contains(s.Remote, wantPort) {
					t.Errorf("%s: local %q remote %q: %s", g.side, s.Local, s.Remote, raw)
				}
				if tc.o.outer6 && !strings.HasPrefix(s.Remote, "[2001:db8:18::") {
					t.Errorf("%s: IKE not over IPv6: remote %q", g.side, s.Remote)
				}
			}
		})
	}
}
