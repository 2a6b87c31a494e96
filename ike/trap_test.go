package ike

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/isle-ipsec/isle/ike/message"
)

func TestManagerTrap(t *testing.T) {
	tb := newTestbed(t, func(pa, pb *Peer) {
		dns := func(c *Config, local, remote string) {
			c.Children = append(c.Children, ChildConfig{Name: "dns", Proposals: c.Children[0].Proposals,
				LocalTS: mustSelectors(t, local), RemoteTS: mustSelectors(t, remote)})
		}
		dns(&pa.Config, "10.1.0.0/24", "10.2.0.53[udp/53]")
		dns(&pb.Config, "10.2.0.53[udp/53]", "10.1.0.0/24")
	})
	inits := func() int {
		n := 0
		for _, p := range tb.net.sent {
			if h, err := message.ParseHeader(p.data); err == nil && h.Exchange == message.IKESAInit && h.Flags&message.FlagResponse == 0 {
				n++
			}
		}
		return n
	}
	creates := func() int {
		n := 0
		for _, p := range tb.net.sent {
			if h, err := message.ParseHeader(p.data); err == nil && p.from.Addr() == addrA && h.Exchange == message.CreateChildSA && h.Flags&message.FlagResponse == 0 {
				n++
			}
		}
		return n
	}
	src, web, dnsServer := netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("10.2.0.9"), netip.MustParseAddr("10.2.0.53")

	// No policy for it: nothing starts.
	if _, _, err := tb.a.Trap(netip.MustParseAddr("10.9.9.9"), web, 1, 0); !errors.Is(err, ErrNoPolicy) {
		t.Fatalf("foreign source: %v", err)
	}
	// The first packet brings the IKE SA up with both CHILD_SAs; more
	// packets meanwhile start nothing.
	for i := 0; i < 3; i++ {
		peer, child, err := tb.a.Trap(src, web, 6, 443)
		if err != nil || peer != "to-b" || child != "net" {
			t.Fatalf("trap: %q %q %v", peer, child, err)
		}
	}
	if inits() != 1 {
		t.Fatalf("%d IKE_SA_INIT requests for three packets", inits())
	}
	tb.net.pump()
	st, _ := tb.established(t)
	if len(st.Children) != 2 {
		t.Fatalf("children: %+v", st.Children)
	}
	// A DNS query is covered by "dns", and the port decides it.
	if _, child, _ := tb.a.Trap(src, dnsServer, 17, 53); child != "dns" {
		t.Errorf("DNS query chose %q", child)
	}
	if _, child, _ := tb.a.Trap(src, dnsServer, 17, 54); child != "net" {
		t.Errorf("port 54 chose %q", child)
	}
	before := creates()
	// The peer deletes "dns"; the next DNS packet brings it back, once.
	var dnsAtB *ChildSA
	for _, c := range tb.b.IKESA("to-a").Children() {
		if c.Name == "dns" {
			dnsAtB = c
		}
	}
	if err := tb.b.IKESA("to-a").DeleteChild(dnsAtB); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	if st, _ := tb.established(t); len(st.Children) != 1 {
		t.Fatalf("after the delete: %+v", st.Children)
	}
	for i := 0; i < 3; i++ {
		if _, child, err := tb.a.Trap(src, dnsServer, 17, 53); err != nil || child != "dns" {
			t.Fatalf("trap: %q %v", child, err)
		}
	}
	tb.net.pump()
	if got := creates() - before; got != 1 {
		t.Errorf("%d CREATE_CHILD_SA requests for three DNS packets", got)
	}
	st, _ = tb.established(t)
	if len(st.Children) != 2 || inits() != 1 {
		t.Fatalf("children %+v, %d IKE_SA_INITs", st.Children, inits())
	}
	// Once it is up, a later trap (a dataplane race) starts nothing.
	tb.a.Trap(src, dnsServer, 17, 53)
	tb.net.pump()
	if got := creates() - before; got != 1 {
		t.Errorf("%d CREATE_CHILD_SA requests after it came up", got)
	}
}
