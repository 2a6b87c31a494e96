package ike

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/internal/netns"
	"github.com/isle-ipsec/isle/internal/swan"
	"github.com/isle-ipsec/isle/internal/testenv"
)

// TestInteropRekeyCollisions: isle and charon rekey the same CHILD_SA, and
// then the IKE SA, at the same time. Our request is held back until we
// have received charon's, so that the two cross for certain. Both must
// settle on the same SA, and charon's verdict ("collision won"/"lost")
// must be the opposite of ours.
func TestInteropRekeyCollisions(t *testing.T) {
	if testenv.Short() {
		t.Skip("namespace test: not in -short")
	}
	swan.Require(t)
	suite := interopSuites[0]
	topo := netns.NewTopology(t, "icc0")
	c := swan.Start(t, topo, netns.GR, charonConfig(suite.ike, suite.esp), swan.Options{})
	left, _ := pair(t, suite.ike, suite.esp)
	e := newUDPEndpoint(t, topo.NS(netns.GL), netip.MustParseAddr(netns.WanGL4), netip.MustParseAddr(netns.WanGR4))
	var s *IKESA
	holding := false
	var held [][]byte
	s, err := NewInitiator(left, func(b []byte) error {
		if h, err := message.ParseHeader(b); err == nil && holding && h.Exchange == message.CreateChildSA && h.Flags&message.FlagResponse == 0 {
			held = append(held, b)
			return nil
		}
		return e.send(true, b) // charon's encap = yes: port 4500 after IKE_SA_INIT
	})
	if err != nil {
		t.Fatal(err)
	}
	// Route by SPIs to the IKE SA they name, following rekeys.
	var all []*IKESA
	last := func() *IKESA {
		x := s
		for x.Successor() != nil {
			x = x.Successor()
		}
		return x
	}
	var release func()
	e.route = func(b []byte) *IKESA {
		h, err := message.ParseHeader(b)
		if err == nil && holding && h.Exchange == message.CreateChildSA && h.Flags&message.FlagResponse == 0 &&
			h.SPIi == last().spii && h.SPIr == last().spir && h.MessageID == last().peerNextID { // a new request, not a retransmission
			// Charon's rekey request is here: let ours go before we
			// answer, so that each side sees the other's request while
			// its own is out.
			release()
			// Charon drops a message that arrives while it still works on
			// one with the same message ID ("ignoring request with ID 0,
			// already processing") and gets it only by retransmission:
			// give it time for ours before we answer its request.
			time.Sleep(200 * time.Millisecond)
		}
		if err == nil {
			for _, x := range all {
				if x.spii == h.SPIi && x.spir == h.SPIr {
					return x
				}
			}
		}
		return all[0]
	}
	left.OnRekey = func(_, n *IKESA) { all = append(all, n) }
	s.cfg.OnRekey = left.OnRekey
	// Our redundant IKE SA's Delete is retransmitted until answered, as
	// the Manager does.
	var redundant *IKESA
	s.cfg.OnRedundant = func(x *IKESA) { all, redundant = append(all, x), x }
	all = []*IKESA{s}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	e.drive(t, func() *IKESA { return s }, nil, func() bool { return s.State() >= StateEstablished })
	checkAgainstCharon(t, c, s, s.ChildSA())
	verdicts := func(what string) (won, lost int) {
		b, _ := os.ReadFile(c.LogPath())
		// "rekey/delete collision": charon saw our Delete of the old
		// CHILD_SA before our answer to its request, and so deletes its
		// own new one, as the loser does.
		// "peer did not notice": it saw our Delete of the old IKE SA
		// first, and adopts ours.
		return strings.Count(string(b), what+" rekey collision won"),
			strings.Count(string(b), what+" rekey collision lost") + strings.Count(string(b), what+" rekey/delete collision") +
				strings.Count(string(b), "peer did not notice "+what+" rekey collision")
	}
	// Charon, busy on one thread with a new IKE SA, sometimes drops a
	// message for it that another thread picked up; both sides then
	// rely on retransmission, so we keep answering while we wait.
	pump := func(d time.Duration) {
		pumpFor(t, e, d, func() *IKESA { return s }, func() bool { return false })
	}
	release = func() {
		holding = false
		for _, b := range held {
			if err := e.send(true, b); err != nil {
				t.Fatal(err)
			}
		}
		held = nil
	}
	outcomes := map[string]int{}
	for round := 0; round < 3; round++ {
		pump(time.Second) // let retransmissions of the last round settle
		// CHILD_SA collision.
		cur := last()
		old := cur.Children()[0]
		holding = true
		if err := cur.RekeyChild(old); err != nil {
			t.Fatal(err)
		}
		if len(held) != 1 {
			t.Fatalf("%d requests held", len(held))
		}
		wonBefore, lostBefore := verdicts("CHILD_SA")
		if err := c.Rekey("net"); err != nil {
			t.Fatal(err)
		}
		e.drive(t, func() *IKESA { return s }, nil, func() bool { rk := cur.childRekeys[old]; return rk != nil && rk.peerChild != nil })
		peers := cur.childRekeys[old].peerChild
		e.drive(t, func() *IKESA { return s }, nil, func() bool {
			return cur.lastRequest == nil && len(cur.queue) == 0 && len(cur.Children()) == 1 && cur.Children()[0] != old
		})
		weLost := cur.Children()[0] == peers
		for deadline := time.Now().Add(10 * time.Second); ; pump(100 * time.Millisecond) {
			won, lost := verdicts("CHILD_SA")
			if won+lost > wonBefore+lostBefore {
				if weLost != (won > wonBefore) {
					t.Fatalf("round %d: isle lost %v, but charon logged %d won, %d lost", round, weLost, won-wonBefore, lost-lostBefore)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("charon logged no collision verdict")
			}
		}
		outcomes[fmt.Sprintf("CHILD_SA lost=%v", weLost)]++
		waitOneChild(t, c, cur.Children()[0], pump)

		// IKE SA collision.
		pump(time.Second)
		holding = true
		if err := cur.Rekey(); err != nil {
			t.Fatal(err)
		}
		wonBefore, lostBefore = verdicts("IKE_SA")
		b, _ := os.ReadFile(c.LogPath())
		noticedBefore := strings.Count(string(b), "peer did not notice IKE_SA rekey collision")
		if out, err := c.Swanctl("--rekey", "--ike", "s2s"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		e.drive(t, func() *IKESA { return s }, nil, func() bool { return cur.ikeRekey != nil && cur.ikeRekey.peerNew != nil })
		peerNew := cur.ikeRekey.peerNew
		unnoticed := func() bool { // charon saw our Delete of the old IKE SA before our answer
			b, _ := os.ReadFile(c.LogPath())
			return strings.Count(string(b), "peer did not notice IKE_SA rekey collision") > noticedBefore
		}
		e.drive(t, func() *IKESA { return s }, nil, func() bool {
			n := last()
			return cur.State() == StateDeleted && n != cur && n.State() == StateEstablished && len(n.Children()) == 1 &&
				(n == peerNew || peerNew.State() == StateDeleted || unnoticed())
		})
		if last() != peerNew && peerNew.State() == StateEstablished {
			// Charon adopted ours and dropped its own without a word:
			// we delete it, as the Manager does after a while.
			t.Log("charon did not notice the collision; deleting its redundant IKE SA")
			if err := peerNew.Delete(); err != nil {
				t.Fatal(err)
			}
		}
		weLost = last() == peerNew
		if weLost {
			if redundant == nil {
				t.Fatal("lost the IKE SA collision without a redundant IKE SA")
			}
			for tries := 0; redundant.lastRequest != nil; tries++ {
				if tries == 5 {
					t.Fatal("charon does not answer the Delete of our redundant IKE SA")
				}
				if tries > 0 {
					t.Logf("retransmitting the Delete of the redundant IKE SA")
					redundant.Retransmit()
				}
				pumpFor(t, e, time.Second, func() *IKESA { return redundant }, func() bool { return redundant.lastRequest == nil })
			}
			redundant = nil
		}
		for deadline := time.Now().Add(10 * time.Second); ; pump(100 * time.Millisecond) {
			won, lost := verdicts("IKE_SA")
			if won+lost > wonBefore+lostBefore {
				if weLost != (won > wonBefore) {
					t.Fatalf("round %d: isle lost the IKE SA collision %v, but charon logged %d won, %d lost", round, weLost, won-wonBefore, lost-lostBefore)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("charon logged no IKE SA collision verdict")
			}
		}
		outcomes[fmt.Sprintf("IKE_SA lost=%v", weLost)]++
		waitOneIKESA(t, c, pump)
		checkIKESPIs(t, c, last())
	}
	t.Logf("outcomes: %v", outcomes)
}

// waitOneChild waits until charon has exactly one CHILD_SA, ours.
func waitOneChild(t *testing.T, c *swan.Charon, ours *ChildSA, pump func(time.Duration)) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); pump(100 * time.Millisecond) {
		sas, err := c.SAs()
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, sa := range sas {
			for _, ch := range sa.Children {
				got = append(got, fmt.Sprintf("%s %08x/%08x", ch.State, ch.SPIIn, ch.SPIOut))
			}
		}
		if len(got) == 1 && got[0] == fmt.Sprintf("INSTALLED %08x/%08x", ours.OutboundSPI, ours.InboundSPI) {
			checkAgainstCharonChild(t, c, ours)
			return
		}
	}
	t.Fatalf("charon's CHILD_SAs: %v, want only %08x/%08x", got, ours.OutboundSPI, ours.InboundSPI)
}

func waitOneIKESA(t *testing.T, c *swan.Charon, pump func(time.Duration)) {
	t.Helper()
	var n int
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); pump(100 * time.Millisecond) {
		sas, err := c.SAs()
		if err != nil {
			t.Fatal(err)
		}
		if n = len(sas); n == 1 {
			return
		}
	}
	t.Fatalf("charon has %d IKE SAs", n)
}

// pumpFor feeds datagrams to the routed IKE SA for up to d, or until done.
func pumpFor(t *testing.T, e *udpEndpoint, d time.Duration, s func() *IKESA, done func() bool) {
	t.Helper()
	timeout := time.After(d)
	for !done() {
		select {
		case dg := <-e.in:
			x := s()
			if e.route != nil {
				x = e.route(dg.data)
			}
			if err := x.Handle(dg.data); err != nil {
				t.Logf("isle: %v", err)
			}
		case <-timeout:
			return
		}
	}
}
