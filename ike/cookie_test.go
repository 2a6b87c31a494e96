package ike

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/sa"
)

func TestCookieJar(t *testing.T) {
	j := newCookieJar()
	ni := bytes.Repeat([]byte{7}, 32)
	ip := netip.MustParseAddr("192.0.2.7")
	c := j.make(ni, ip, 42)
	if !j.valid(c, ni, ip, 42) {
		t.Fatal("own cookie refused")
	}
	for name, ok := range map[string]bool{
		"other nonce":   j.valid(c, bytes.Repeat([]byte{8}, 32), ip, 42),
		"other address": j.valid(c, ni, netip.MustParseAddr("192.0.2.8"), 42),
		"other SPI":     j.valid(c, ni, ip, 43),
		"truncated":     j.valid(c[:len(c)-1], ni, ip, 42),
		"other version": j.valid(append([]byte{c[0] + 5}, c[1:]...), ni, ip, 42),
	} {
		if ok {
			t.Errorf("%s accepted", name)
		}
	}
	// A cookie outlives one rotation of the secret, not two.
	for i := 0; i < cookieReuse; i++ {
		j.make(ni, ip, 1)
	}
	if !j.valid(c, ni, ip, 42) {
		t.Error("cookie of the previous secret refused")
	}
	for i := 0; i < cookieReuse; i++ {
		j.make(ni, ip, 1)
	}
	if j.valid(c, ni, ip, 42) {
		t.Error("cookie of a secret two generations old accepted")
	}
}

// spoofedInit is an IKE_SA_INIT request as an attacker forging source
// addresses would send: well formed, never continued.
func spoofedInit(t testing.TB, props []sa.Proposal, cookie []byte) []byte {
	var r [8 + 32 + 32]byte
	rand.Read(r[:])
	var ps []message.Payload
	if cookie != nil {
		ps = append(ps, &message.Notify{NotifyType: message.Cookie, Data: cookie})
	}
	ps = append(ps, proposalsToWire(props, nil),
		&message.KE{Group: sa.DHCurve25519, Data: r[8:40]}, &message.Nonce{Data: r[40:]})
	b, err := (&message.Message{Header: message.Header{SPIi: binary.BigEndian.Uint64(r[:8]) | 1, Exchange: message.IKESAInit,
		Flags: message.FlagInitiator}, Payloads: ps}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randomAddr() netip.AddrPort {
	var a [4]byte
	rand.Read(a[:])
	a[0] = 10
	return netip.AddrPortFrom(netip.AddrFrom4(a), 500)
}

// cookieBed: A and C initiate to B, whose one peer accepts anyone.
type cookieBed struct {
	clock   *fakeClock
	net     *net2
	a, b, c *Manager
	props   []sa.Proposal
}

var addrC = netip.MustParseAddr("198.18.0.3")

func newCookieBed(t *testing.T, tweak func(*ManagerConfig)) *cookieBed {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	right.RemoteID = AnyID()
	cb := &cookieBed{clock: &fakeClock{}, net: &net2{members: map[netip.Addr]*Manager{}}, props: left.IKEProposals}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	mk := func(self netip.Addr, p Peer, tw func(*ManagerConfig)) *Manager {
		cfg := ManagerConfig{Peers: []Peer{p}, Send: cb.net.sender(self), AfterFunc: cb.clock.AfterFunc, Log: quiet,
			Jitter: func(time.Duration) time.Duration { return 0 }}
		if tw != nil {
			tw(&cfg)
		}
		m, err := NewManager(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cb.net.members[self] = m
		t.Cleanup(m.Close)
		return m
	}
	cb.a = mk(addrA, Peer{Name: "to-b", Config: left, Remote: netip.AddrPortFrom(addrB, 500)}, nil)
	cb.b = mk(addrB, Peer{Name: "anyone", Config: right}, tweak)
	third := left
	third.LocalID = FQDN("gw-c")
	third.Local = netip.AddrPortFrom(addrC, 500)
	cb.c = mk(addrC, Peer{Name: "to-b", Config: third, Remote: netip.AddrPortFrom(addrB, 500)}, nil)
	return cb
}

func (cb *cookieBed) established(m *Manager) *Status {
	for _, s := range m.Status() {
		if s.State == StateEstablished {
			return &s
		}
	}
	return nil
}

func (cb *cookieBed) establishedSAs(m *Manager) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, ms := range m.bySPI {
		if ms.sa.State() == StateEstablished {
			n++
		}
	}
	return n
}

// cookiesTo counts COOKIE answers B sent to addr.
func (cb *cookieBed) cookiesTo(addr netip.Addr) int {
	cb.net.mu.Lock()
	defer cb.net.mu.Unlock()
	n := 0
	for _, p := range cb.net.sent {
		if p.to.Addr() != addr || p.from.Addr() != addrB {
			continue
		}
		if m, err := message.Parse(p.data); err == nil && m.Exchange == message.IKESAInit && findNotify(m.Payloads, message.Cookie) != nil {
			n++
		}
	}
	return n
}

// TestCookieFlood: 10,000 IKE_SA_INITs from forged addresses leave at most
// CookieThreshold half-open IKE SAs; the established IKE SA carries on and
// a real initiator still gets through, by way of a cookie.
func TestCookieFlood(t *testing.T) {
	cb := newCookieBed(t, nil)
	if err := cb.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	cb.net.pump()
	before := cb.established(cb.a)
	if before == nil || cb.b.HalfOpen() != 0 {
		t.Fatalf("A not established (%+v), B half-open %d", cb.a.Status(), cb.b.HalfOpen())
	}

	const flood = 10000
	forged := 0
	for i := 0; i < flood; i++ {
		var cookie []byte
		if i%10 == 0 { // some guess at a cookie
			cookie = make([]byte, 33)
			rand.Read(cookie)
			forged++
		}
		cb.b.Handle(randomAddr(), false, spoofedInit(t, cb.props, cookie))
	}
	// The answers went to the forged addresses: nobody there.
	cb.net.mu.Lock()
	answers := len(cb.net.queue)
	cb.net.queue = nil
	cb.net.mu.Unlock()
	if answers != flood {
		t.Errorf("B answered %d of %d requests", answers, flood)
	}
	if got := cb.b.HalfOpen(); got != 10 {
		t.Errorf("half-open after the flood: %d, want the cookie threshold 10", got)
	}
	if n := len(cb.b.bySPI); n > 11 {
		t.Errorf("B keeps %d IKE SAs", n)
	}

	// The established IKE SA is untouched: liveness and a CHILD_SA rekey work.
	after := cb.established(cb.a)
	if after == nil || after.SPIi != before.SPIi {
		t.Fatalf("A's IKE SA changed: %+v", cb.a.Status())
	}
	if err := cb.a.CheckLiveness("to-b"); err != nil {
		t.Fatal(err)
	}
	cb.net.pump()
	st := cb.a.Status()[0]
	if err := cb.a.RekeyChild("to-b", st.Children[0].InboundSPI); err != nil {
		t.Fatal(err)
	}
	cb.net.pump()
	if st2 := cb.a.Status()[0]; st2.State != StateEstablished || len(st2.Children) != 1 || st2.Children[0].InboundSPI == st.Children[0].InboundSPI {
		t.Errorf("CHILD_SA rekey during the flood: %+v", st2)
	}

	// A new, real initiator is asked for a cookie and gets through.
	if err := cb.c.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	cb.net.pump()
	if cb.established(cb.c) == nil {
		t.Fatalf("C not established: %+v", cb.c.Status())
	}
	if n := cb.cookiesTo(addrC); n != 1 {
		t.Errorf("B sent C %d cookies, want 1", n)
	}
	if got := cb.establishedSAs(cb.b); got != 2 {
		t.Errorf("B has %d established IKE SAs, want A's and C's", got)
	}

	// The forged half-open SAs time out; then no cookie is needed.
	cb.clock.advance(31*time.Second, cb.net.pump)
	if got := cb.b.HalfOpen(); got != 0 {
		t.Errorf("half-open after the timeout: %d", got)
	}
	if cb.established(cb.a) == nil || cb.established(cb.c) == nil || cb.establishedSAs(cb.b) != 2 {
		t.Error("an established IKE SA was dropped with the half-open ones")
	}
}

// TestBlockThreshold: one address gets at most BlockThreshold half-open
// IKE SAs; a retransmitted request reaches its responder and is no new one.
func TestBlockThreshold(t *testing.T) {
	cb := newCookieBed(t, func(c *ManagerConfig) { c.CookieThreshold = 100 })
	from := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.9"), 500)
	first := spoofedInit(t, cb.props, nil)
	for i := 0; i < 8; i++ {
		cb.b.Handle(from, false, spoofedInit(t, cb.props, nil))
	}
	if got := cb.b.HalfOpen(); got != 5 {
		t.Fatalf("half-open from one address: %d, want 5", got)
	}
	cb.b.Handle(netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), 500), false, first)
	cb.b.Handle(netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), 500), false, first)
	if got := cb.b.HalfOpen(); got != 6 {
		t.Fatalf("half-open: %d, want 6 (a retransmission is not a new IKE SA)", got)
	}
	// Below the cookie threshold, nobody was asked for a cookie.
	if n := cb.cookiesTo(from.Addr()); n != 0 {
		t.Errorf("%d cookies below the threshold", n)
	}
	// A and C, other addresses, are not blocked.
	if err := cb.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	cb.net.pump()
	if cb.established(cb.a) == nil {
		t.Fatal("A blocked")
	}
}

// TestInitRetransmitAnswered: a responder answers a retransmitted
// IKE_SA_INIT request (its answer was lost) with the same response.
func TestInitRetransmitAnswered(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r, l := newPair(t, left, right)
	if err := i.Start(); err != nil {
		t.Fatal(err)
	}
	req := l.toR[0]
	if err := r.Handle(req); err != nil {
		t.Fatal(err)
	}
	first := l.toI[0]
	if err := r.Handle(req); err != nil {
		t.Fatalf("retransmitted request: %v", err)
	}
	if len(l.toI) != 2 || !bytes.Equal(l.toI[1], first) {
		t.Fatalf("%d answers; the second the same: %v", len(l.toI), len(l.toI) == 2 && bytes.Equal(l.toI[1], first))
	}
	l.toR, l.toI = nil, l.toI[1:] // the first answer was lost
	if err := i.Handle(l.toI[0]); err != nil {
		t.Fatal(err)
	}
	l.toI = nil
	l.run(t, i, r)
	if i.State() != StateEstablished || r.State() != StateEstablished {
		t.Fatalf("%v/%v", i.State(), r.State())
	}
}

// FuzzManagerUnderLoad: whatever arrives while cookies are demanded, the
// Manager neither panics nor keeps state for a request without a valid
// cookie.
func FuzzManagerUnderLoad(f *testing.F) {
	left, right := pair(f, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	right.RemoteID = AnyID()
	f.Add(spoofedInit(f, left.IKEProposals, nil))
	f.Add(spoofedInit(f, left.IKEProposals, make([]byte, 33)))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := NewManager(ManagerConfig{Peers: []Peer{{Name: "anyone", Config: right}},
			Send: func(netip.AddrPort, bool, []byte) error { return nil }, CookieThreshold: 1,
			AfterFunc: (&fakeClock{}).AfterFunc, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		m.Handle(netip.MustParseAddrPort("192.0.2.1:500"), false, spoofedInit(t, left.IKEProposals, nil))
		m.Handle(netip.MustParseAddrPort("192.0.2.2:500"), false, b)
		if n := m.HalfOpen(); n != 1 {
			t.Fatalf("%d half-open IKE SAs", n)
		}
	})
}
