package ike

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/internal/netns"
	"github.com/isle-ipsec/isle/internal/swan"
	"github.com/isle-ipsec/isle/internal/testenv"
)

// TestInteropCookie: the Manager is under load (a forged half-open IKE SA
// with CookieThreshold 1), so charon's IKE_SA_INIT is answered with a
// COOKIE; charon repeats it with the cookie and the IKE SA comes up.
func TestInteropCookie(t *testing.T) {
	if testenv.Short() {
		t.Skip("namespace test: not in -short")
	}
	swan.Require(t)
	suite := interopSuites[0]
	topo := netns.NewTopology(t, "ick0")
	c := swan.Start(t, topo, netns.GR, charonConfig(suite.ike, suite.esp), swan.Options{})
	left, _ := pair(t, suite.ike, suite.esp)
	anyone := left
	anyone.RemoteID = AnyID()
	charon := netip.MustParseAddr(netns.WanGR4)
	e := newUDPEndpoint(t, topo.NS(netns.GL), netip.MustParseAddr(netns.WanGL4), charon)
	var mu sync.Mutex
	cookies := 0
	m, err := NewManager(ManagerConfig{
		Peers: []Peer{{Name: "gr", Config: left, Remote: netip.AddrPortFrom(charon, 500)}, {Name: "anyone", Config: anyone}},
		Send: func(to netip.AddrPort, natt bool, b []byte) error {
			if to.Addr() != charon {
				return nil // the forged initiator is nowhere
			}
			if msg, err := message.Parse(b); err == nil && msg.Exchange == message.IKESAInit && findNotify(msg.Payloads, message.Cookie) != nil {
				mu.Lock()
				cookies++
				mu.Unlock()
			}
			return e.send(natt, b)
		},
		CookieThreshold: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Handle(netip.MustParseAddrPort("192.0.2.77:500"), false, spoofedInit(t, left.IKEProposals, nil))
	if m.HalfOpen() != 1 {
		t.Fatalf("half-open: %d", m.HalfOpen())
	}
	go func() {
		for d := range e.in {
			port := uint16(500)
			if d.natt {
				port = 4500
			}
			m.Handle(netip.AddrPortFrom(charon, port), d.natt, d.data)
		}
	}()
	if err := c.Initiate("net", 15*time.Second); err != nil {
		t.Fatalf("charon: %v", err)
	}
	ike, child, err := c.WaitChild("net", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	n := cookies
	mu.Unlock()
	if n != 1 {
		t.Errorf("%d COOKIE answers to charon, want 1", n)
	}
	st := m.Status()
	if len(st) != 1 || st[0].Peer != "gr" || st[0].State != StateEstablished {
		t.Fatalf("status %+v", st)
	}
	if ike.InitiatorSPI == "" {
		t.Fatal("charon lists no SPIs")
	}
	if ours := st[0].Children[0]; child.SPIIn != ours.OutboundSPI || child.SPIOut != ours.InboundSPI {
		t.Errorf("CHILD_SA SPIs: charon %08x/%08x, isle %08x/%08x", child.SPIIn, child.SPIOut, ours.OutboundSPI, ours.InboundSPI)
	}
}
