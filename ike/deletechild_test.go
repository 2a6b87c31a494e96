package ike

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/ike/message"
)

// TestManagerDeleteChild: one CHILD_SA of two is deleted with the peer
// (one INFORMATIONAL exchange, retransmitted when its answer is lost);
// the IKE SA and the other CHILD_SA stay, and the deleted one can be
// negotiated again on its own.
func TestManagerDeleteChild(t *testing.T) {
	tb := newTestbed(t, func(pa, pb *Peer) {
		dns := ChildConfig{Name: "dns", Proposals: pa.Config.Children[0].Proposals,
			LocalTS: mustSelectors(t, "10.1.0.0/24"), RemoteTS: mustSelectors(t, "10.2.0.53[udp/53]")}
		pa.Config.Children = append(pa.Config.Children, dns)
		dns.LocalTS, dns.RemoteTS = dns.RemoteTS, dns.LocalTS
		pb.Config.Children = append(pb.Config.Children, dns)
	})
	if err := tb.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	before, _ := tb.established(t)
	if len(before.Children) != 2 {
		t.Fatalf("children: %+v", before.Children)
	}
	count := func(from netip.Addr, ex message.ExchangeType, response bool) int {
		n := 0
		for _, p := range tb.net.sent {
			h, err := message.ParseHeader(p.data)
			if err == nil && p.from.Addr() == from && h.Exchange == ex && (h.Flags&message.FlagResponse != 0) == response {
				n++
			}
		}
		return n
	}

	for _, tc := range []struct{ peer, child string }{{"to-b", "nosuch"}, {"nosuch", "dns"}} {
		if err := tb.a.DeleteChild(tc.peer, tc.child); err == nil {
			t.Errorf("DeleteChild(%q, %q) accepted", tc.peer, tc.child)
		}
	}
	if n := count(addrA, message.Informational, false); n != 0 {
		t.Fatalf("%d INFORMATIONAL requests for nothing to delete", n)
	}

	// B's first answer is lost: A's retransmission gets it again.
	lost := 0
	tb.net.drop = func(p packet) bool {
		h, err := message.ParseHeader(p.data)
		if err == nil && p.from.Addr() == addrB && h.Exchange == message.Informational && lost == 0 {
			lost++
			return true
		}
		return false
	}
	if err := tb.a.DeleteChild("to-b", "dns"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	if a := tb.a.Status()[0]; len(a.Children) != 2 {
		t.Fatalf("A removed its side before the answer: %+v", a.Children)
	}
	tb.advance(5 * time.Second) // the first retransmission is due after 4 s
	if lost != 1 {
		t.Fatalf("%d answers lost", lost)
	}
	after, afterB := tb.established(t)
	names := func(cs []ChildSA) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	if !slices.Equal(names(after.Children), []string{"net"}) || !slices.Equal(names(afterB.Children), []string{"net"}) {
		t.Fatalf("children left: %v / %v", names(after.Children), names(afterB.Children))
	}
	if after.SPIi != before.SPIi || after.Children[0].InboundSPI != before.Children[0].InboundSPI {
		t.Error("the IKE SA or the other CHILD_SA changed")
	}
	if n := count(addrA, message.Informational, false); n != 2 {
		t.Errorf("%d INFORMATIONAL requests (one and its retransmission expected)", n)
	}
	if tb.la.count("to-b:DOWN:dns") != 1 || tb.lb.count("to-a:DOWN:dns") != 1 || tb.la.count("to-b:DOWN:net")+tb.lb.count("to-a:DOWN:net") != 0 {
		t.Errorf("events %v / %v", tb.la.events, tb.lb.events)
	}
	if len(tb.la.closed) != 0 || !slices.Equal(tb.lb.closed, []string{"to-a:dns"}) {
		t.Errorf("closed by the peer: %v / %v", tb.la.closed, tb.lb.closed)
	}
	if err := tb.a.DeleteChild("to-b", "dns"); err == nil {
		t.Error("a deleted CHILD_SA deleted again")
	}

	// It comes back alone (CREATE_CHILD_SA, no new IKE SA).
	if _, child, err := tb.a.Trap(netip.MustParseAddr("10.1.0.7"), netip.MustParseAddr("10.2.0.53"), 17, 53); err != nil || child != "dns" {
		t.Fatalf("trap: %q %v", child, err)
	}
	tb.net.pump()
	again, _ := tb.established(t)
	if len(again.Children) != 2 || again.SPIi != before.SPIi || count(addrA, message.IKESAInit, false) != 1 {
		t.Fatalf("after the new CREATE_CHILD_SA: %+v", again)
	}
}

// TestManagerPeerDeleteIsNotDeath: when the peer deletes the IKE SA, a
// peer with Restart (dpd_action = restart) does not initiate again by
// itself: its CHILD_SAs go down marked PeerClosed, for close_action.
func TestManagerPeerDeleteIsNotDeath(t *testing.T) {
	tb := newTestbed(t, func(pa, pb *Peer) { pa.Restart = true })
	if err := tb.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	tb.established(t)
	if err := tb.b.Terminate("to-a"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	tb.advance(time.Minute)
	if sa, sb := tb.a.Status(), tb.b.Status(); len(sa)+len(sb) != 0 {
		t.Fatalf("after the peer's DELETE: %+v / %+v", sa, sb)
	}
	if !slices.Equal(tb.la.closed, []string{"to-b:net"}) || len(tb.lb.closed) != 0 {
		t.Errorf("closed by the peer: %v / %v", tb.la.closed, tb.lb.closed)
	}
}
