package ike

import (
	"bytes"
	"crypto/x509"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestManagerAnyPeersByIdentity: one responder with three %any peers,
// told apart by the identity the initiator proves: a PSK peer named by
// FQDN, a certificate peer named by its DN, and a catch-all. Each
// initiator lands on its own peer, with that peer's CHILD_SA.
func TestManagerAnyPeersByIdentity(t *testing.T) {
	root := newTestCA(t, "isle root", kP256, 0)
	bobKey, gwKey := testKey(t, kP256, 3), testKey(t, kEd25519, 0)
	bobCert := issue(t, root, dn("bob"), bobKey, false)
	gwCert := issue(t, root, dn("gw-right"), gwKey, false)

	base, _ := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	esp := base.Children[0].Proposals
	child := func(name, local, remote string) []ChildConfig {
		return []ChildConfig{{Name: name, Proposals: esp, LocalTS: mustSelectors(t, local), RemoteTS: mustSelectors(t, remote)}}
	}
	responder := func(name string, remote Identity, psk string, children []ChildConfig) Peer {
		c := base
		c.LocalID, c.RemoteID, c.PSK, c.Children = FQDN("gw-right"), remote, []byte(psk), children
		c.Local, c.Remote = netip.AddrPortFrom(addrB, 500), netip.AddrPort{}
		return Peer{Name: name, Config: c}
	}
	anyone := responder("anyone", AnyID(), "shared-by-many", child("any-net", "10.2.0.0/24", "10.9.0.0/16"))
	alice := responder("alice", FQDN("alice"), "alice-secret", child("alice-net", "10.2.0.0/24", "10.1.1.0/24"))
	bob := responder("bob", CertIdentity(bobCert), "", child("bob-net", "10.2.0.0/24", "10.1.2.0/24"))
	bob.Config = certConfig(bob.Config, []*x509.Certificate{gwCert}, gwKey, root.cert, CertIdentity(bobCert))

	initiator := func(name string, self netip.Addr, id Identity, psk string, remoteTS string) Peer {
		c := base
		c.LocalID, c.RemoteID, c.PSK = id, FQDN("gw-right"), []byte(psk)
		c.Children = child("net", remoteTS, "10.2.0.0/24")
		c.Local, c.Remote = netip.AddrPortFrom(self, 500), netip.AddrPortFrom(addrB, 500)
		return Peer{Name: "to-gw", Config: c, Remote: netip.AddrPortFrom(addrB, 500)}
	}
	addrD := netip.MustParseAddr("198.18.0.4")
	pAlice := initiator("alice", addrA, FQDN("alice"), "alice-secret", "10.1.1.0/24")
	pBob := initiator("bob", addrC, CertIdentity(bobCert), "", "10.1.2.0/24")
	pBob.Config = certConfig(pBob.Config, []*x509.Certificate{bobCert}, bobKey, root.cert, CertIdentity(gwCert))
	pDave := initiator("dave", addrD, FQDN("dave"), "shared-by-many", "10.9.1.0/24")

	clock, nw := &fakeClock{}, &net2{members: map[netip.Addr]*Manager{}}
	mk := func(self netip.Addr, peers ...Peer) *Manager {
		m, err := NewManager(ManagerConfig{Peers: peers, Send: nw.sender(self), AfterFunc: clock.AfterFunc,
			Jitter: func(time.Duration) time.Duration { return 0 }})
		if err != nil {
			t.Fatal(err)
		}
		nw.members[self] = m
		t.Cleanup(m.Close)
		return m
	}
	gw := mk(addrB, anyone, alice, bob)
	ms := map[string]*Manager{"alice": mk(addrA, pAlice), "bob": mk(addrC, pBob), "dave": mk(addrD, pDave)}
	for name, m := range ms {
		if err := m.Initiate("to-gw"); err != nil {
			t.Fatal(err)
		}
		nw.pump()
		if st := m.Status(); len(st) != 1 || st[0].State != StateEstablished {
			t.Fatalf("%s: %+v", name, st)
		}
	}
	want := map[string]string{"anyone": "any-net", "alice": "alice-net", "bob": "bob-net"}
	got := map[string]string{}
	for _, st := range gw.Status() {
		if st.State != StateEstablished || len(st.Children) != 1 {
			t.Fatalf("gateway: %+v", st)
		}
		got[st.Peer] = st.Children[0].Name
		if st.Peer == "bob" && (st.PeerAuth != "ECDSA_WITH_SHA2_256" || st.PeerID.String() != "C=CH, O=isle test, CN=bob") {
			t.Errorf("bob's status: %v by %s", st.PeerID, st.PeerAuth)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("gateway peers: %v, want %v", got, want)
	}
	for p, c := range want {
		if got[p] != c {
			t.Errorf("peer %s carries %q, want %q", p, got[p], c)
		}
	}
	if id := gw.IKESA("bob").PeerID().String(); id != "C=CH, O=isle test, CN=bob" {
		t.Errorf("bob authenticated as %q", id)
	}
}

// TestChoosePeerRefuses: without a catch-all, an identity no %any peer
// expects is refused with AUTHENTICATION_FAILED, and the reason named.
func TestChoosePeerRefuses(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	right.RemoteID = FQDN("alice")
	left.LocalID = FQDN("mallory")
	clock, nw := &fakeClock{}, &net2{members: map[netip.Addr]*Manager{}}
	var logged bytes.Buffer
	gw, err := NewManager(ManagerConfig{Peers: []Peer{{Name: "alice", Config: right}}, Send: nw.sender(addrB), AfterFunc: clock.AfterFunc,
		Log: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(ManagerConfig{Peers: []Peer{{Name: "gw", Config: left, Remote: netip.AddrPortFrom(addrB, 500)}},
		Send: nw.sender(addrA), AfterFunc: clock.AfterFunc})
	if err != nil {
		t.Fatal(err)
	}
	nw.members[addrA], nw.members[addrB] = m, gw
	if err := m.Initiate("gw"); err != nil {
		t.Fatal(err)
	}
	nw.pump()
	if st := m.Status(); len(st) != 0 {
		t.Fatalf("initiator: %+v", st)
	}
	if len(gw.Status()) != 0 {
		t.Fatalf("gateway: %+v", gw.Status())
	}
	// One line in the responder's log says why.
	if n := strings.Count(logged.String(), "identity mismatch: no connection takes peer mallory"); n != 1 {
		t.Errorf("responder's log (%d matching lines):\n%s", n, logged.String())
	}
}

// TestManagerLogsRefusedChild: both sides log, once, why the first
// CHILD_SA was refused while the IKE SA came up.
func TestManagerLogsRefusedChild(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	left.Children[0].RemoteTS = mustSelectors(t, "10.9.0.0/24")
	clock, nw := &fakeClock{}, &net2{members: map[netip.Addr]*Manager{}}
	var logA, logB bytes.Buffer
	a, err := NewManager(ManagerConfig{Peers: []Peer{{Name: "b", Config: left, Remote: netip.AddrPortFrom(addrB, 500)}},
		Send: nw.sender(addrA), AfterFunc: clock.AfterFunc, Log: slog.New(slog.NewTextHandler(&logA, nil))})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewManager(ManagerConfig{Peers: []Peer{{Name: "a", Config: right, Remote: netip.AddrPortFrom(addrA, 500)}},
		Send: nw.sender(addrB), AfterFunc: clock.AfterFunc, Log: slog.New(slog.NewTextHandler(&logB, nil))})
	if err != nil {
		t.Fatal(err)
	}
	nw.members[addrA], nw.members[addrB] = a, b
	if err := a.Initiate("b"); err != nil {
		t.Fatal(err)
	}
	nw.pump()
	for name, l := range map[string]*bytes.Buffer{"initiator": &logA, "responder": &logB} {
		if n := strings.Count(l.String(), "first CHILD_SA refused"); n != 1 || !strings.Contains(l.String(), "TS_UNACCEPTABLE") {
			t.Errorf("%s's log (%d refusals):\n%s", name, n, l.String())
		}
		if n := strings.Count(l.String(), "IKE SA established"); n != 1 {
			t.Errorf("%s logged the establishment %d times", name, n)
		}
	}
}
