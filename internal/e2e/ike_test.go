package e2e

import (
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
			t.Logf("IKE_SA and CHILD_SA up on both sides %v after the initiator started", took)
			if took > time.Second {
				t.Errorf("negotiation took %v, want well under a second", took)
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
// either side, whichever timer fires first; the hard lifetime is 1.1 s)
// under a continuous ping of 5 per second for 22 s: at least 20
// consecutive rekeys, and not one ping is lost.
func TestIKEChildRekeyNoLoss(t *testing.T) {
	l := startIKELab(t, "gkd", ikeOpts{childRekey: "1s"})
	l.waitUp("site", 10*time.Second)
	first := l.installed(l.left, "site")
	const count = 110
	_, got := l.continuousPing(count, 200*time.Millisecond)
	n, err := got()
	if err != nil {
		t.Fatal(err)
	}
	rekeys := countLog(l.left, "CHILD_SA rekeyed")
	t.Logf("%d CHILD_SA rekeys in %v of ping; %d of %d pings answered", rekeys, count*200*time.Millisecond, n, count)
	if n != count {
		t.Errorf("lost %d pings during rekeys", count-n)
	}
	if rekeys < 20 {
		t.Errorf("only %d rekeys in 22 s with rekey_time 1s", rekeys)
	}
	if now := l.installed(l.left, "site"); len(now) != 1 || now[0] == first[0] {
		t.Errorf("installed CHILD_SAs now %v, first %v", now, first)
	}
	if retired := countLog(l.left, "old inbound SA retired"); retired < rekeys-1 {
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
