package ike

import (
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/ike/message"
)

// fakeClock runs timers when the test advances time.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Duration
	f       func()
	stopped bool
	fired   bool
}

func (t *fakeTimer) Stop() bool {
	was := !t.stopped && !t.fired
	t.stopped = true
	return was
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now + d, f: f}
	c.timers = append(c.timers, t)
	return t
}

// advance moves time forward by d, firing due timers in order and
// pumping the network after each.
func (c *fakeClock) advance(d time.Duration, pump func()) {
	end := c.now + d
	for {
		c.mu.Lock()
		sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at < c.timers[j].at })
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.stopped && !t.fired && t.at <= end {
				next = t
				break
			}
		}
		if next == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		c.now = next.at
		next.fired = true
		c.mu.Unlock()
		next.f()
		pump()
	}
}

type packet struct {
	from, to netip.AddrPort
	natt     bool
	data     []byte
}

// net2 joins two managers; drop, when set, may lose a packet.
type net2 struct {
	mu      sync.Mutex
	queue   []packet
	sent    []packet
	members map[netip.Addr]*Manager
	drop    func(packet) bool
}

func (n *net2) sender(self netip.Addr) func(to netip.AddrPort, natt bool, b []byte) error {
	return func(to netip.AddrPort, natt bool, b []byte) error {
		port := uint16(500)
		if natt {
			port = 4500
		}
		p := packet{from: netip.AddrPortFrom(self, port), to: to, natt: natt, data: append([]byte(nil), b...)}
		n.mu.Lock()
		n.queue = append(n.queue, p)
		n.sent = append(n.sent, p)
		n.mu.Unlock()
		return nil
	}
}

func (n *net2) pump() {
	for i := 0; i < 1000; i++ {
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.mu.Unlock()
			return
		}
		p := n.queue[0]
		n.queue = n.queue[1:]
		n.mu.Unlock()
		if n.drop != nil && n.drop(p) {
			continue
		}
		if m := n.members[p.to.Addr()]; m != nil {
			m.Handle(p.from, p.natt, p.data)
		}
	}
	panic("network does not settle")
}

var (
	addrA = netip.MustParseAddr("198.18.0.1")
	addrB = netip.MustParseAddr("198.18.0.2")
)

type childLog struct {
	mu     sync.Mutex
	events []string
	closed []string // "peer:child" of each ChildDown with PeerClosed
}

func (c *childLog) record(peer string, ev ChildEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := peer + ":" + ev.Kind.String() + ":" + ev.Child.Name
	if ev.Replaces != nil {
		s += ":rekey"
	}
	c.events = append(c.events, s)
	if ev.PeerClosed {
		c.closed = append(c.closed, peer+":"+ev.Child.Name)
	}
}

func (c *childLog) count(s string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.events {
		if e == s {
			n++
		}
	}
	return n
}

type testbed struct {
	clock  *fakeClock
	net    *net2
	a, b   *Manager
	la, lb *childLog
}

func newTestbed(t *testing.T, tweak func(pa, pb *Peer)) *testbed {
	t.Helper()
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	pa := Peer{Name: "to-b", Config: left, Remote: netip.AddrPortFrom(addrB, 500)}
	pb := Peer{Name: "to-a", Config: right, Remote: netip.AddrPortFrom(addrA, 500)}
	if tweak != nil {
		tweak(&pa, &pb)
	}
	tb := &testbed{clock: &fakeClock{}, net: &net2{members: map[netip.Addr]*Manager{}}, la: &childLog{}, lb: &childLog{}}
	var err error
	// Fixed jitters, different per side as random ones would be.
	tb.a, err = NewManager(ManagerConfig{Peers: []Peer{pa}, Send: tb.net.sender(addrA), OnChild: tb.la.record, AfterFunc: tb.clock.AfterFunc,
		Jitter: func(d time.Duration) time.Duration { return d / 20 }})
	if err != nil {
		t.Fatal(err)
	}
	tb.b, err = NewManager(ManagerConfig{Peers: []Peer{pb}, Send: tb.net.sender(addrB), OnChild: tb.lb.record, AfterFunc: tb.clock.AfterFunc,
		Jitter: func(d time.Duration) time.Duration { return d / 15 }})
	if err != nil {
		t.Fatal(err)
	}
	tb.net.members[addrA], tb.net.members[addrB] = tb.a, tb.b
	t.Cleanup(func() { tb.a.Close(); tb.b.Close() })
	return tb
}

func (tb *testbed) advance(d time.Duration) { tb.clock.advance(d, tb.net.pump) }

func (tb *testbed) established(t *testing.T) (Status, Status) {
	t.Helper()
	sa, sb := tb.a.Status(), tb.b.Status()
	if len(sa) != 1 || len(sb) != 1 || sa[0].State != StateEstablished || sb[0].State != StateEstablished {
		t.Fatalf("status %+v / %+v", sa, sb)
	}
	if sa[0].SPIi != sb[0].SPIi || sa[0].SPIr != sb[0].SPIr {
		t.Fatalf("SPIs differ: %x/%x vs %x/%x", sa[0].SPIi, sa[0].SPIr, sb[0].SPIi, sb[0].SPIr)
	}
	return sa[0], sb[0]
}

func TestManagerEstablish(t *testing.T) {
	tb := newTestbed(t, func(pa, pb *Peer) {
		second := ChildConfig{Name: "dns", Proposals: pa.Config.Children[0].Proposals,
			LocalTS: mustSelectors(t, "10.1.0.0/24[udp]"), RemoteTS: mustSelectors(t, "10.2.0.53[udp/53]")}
		pa.Config.Children = append(pa.Config.Children, second)
		second.LocalTS, second.RemoteTS = second.RemoteTS, second.LocalTS
		pb.Config.Children = append(pb.Config.Children, second)
	})
	if err := tb.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	sa, sb := tb.established(t)
	if !sa.Initiator || sb.Initiator || len(sa.Children) != 2 || len(sb.Children) != 2 {
		t.Fatalf("status %+v / %+v", sa, sb)
	}
	if sa.Children[0].InboundEncKey != nil {
		t.Error("Status exposes keys")
	}
	for _, ev := range []string{"to-b:UP:net", "to-b:UP:dns"} {
		if tb.la.count(ev) != 1 {
			t.Errorf("A: %s seen %d times: %v", ev, tb.la.count(ev), tb.la.events)
		}
	}
	if tb.lb.count("to-a:UP:net") != 1 || tb.lb.count("to-a:UP:dns") != 1 {
		t.Errorf("B events %v", tb.lb.events)
	}
	// Initiating again while up does nothing.
	before := len(tb.net.sent)
	if err := tb.a.Initiate("to-b"); err != nil || len(tb.net.sent) != before {
		t.Errorf("second Initiate: %v, %d datagrams", err, len(tb.net.sent)-before)
	}
	if err := tb.a.Initiate("nobody"); err == nil {
		t.Error("Initiate of an unknown peer")
	}
}

func TestManagerNATTraversal(t *testing.T) {
	tb := newTestbed(t, func(pa, pb *Peer) { pa.Config.ForceEncap = true })
	if err := tb.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	tb.established(t)
	var ports []bool
	for _, p := range tb.net.sent {
		ports = append(ports, p.natt)
	}
	// IKE_SA_INIT on 500, IKE_AUTH both ways on 4500.
	if len(ports) != 4 || ports[0] || ports[1] || !ports[2] || !ports[3] {
		t.Fatalf("natt flags of the exchange: %v", ports)
	}
	if tb.net.sent[3].to.Port() != 4500 {
		t.Errorf("responder answered to %v", tb.net.sent[3].to)
	}
}

func TestManagerRetransmission(t *testing.T) {
	tb := newTestbed(t, func(pa, pb *Peer) { pa.Restart = true })
	lost := 0
	tb.net.drop = func(p packet) bool {
		if h, _ := message.ParseHeader(p.data); h.Exchange == message.IKEAuth && h.Flags&message.FlagResponse != 0 && lost < 2 {
			lost++
			return true
		}
		return false
	}
	if err := tb.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	tb.advance(3 * time.Second)
	if st := tb.a.Status(); st[0].State != StateAuthSent {
		t.Fatalf("before the first timeout: %v", st[0].State)
	}
	tb.advance(1*time.Second + 7200*time.Millisecond) // 4s, then 4*1.8s
	tb.established(t)
	if lost != 2 {
		t.Errorf("lost %d responses", lost)
	}

	// A peer that never answers is declared dead, then restarted.
	tb.net.drop = func(p packet) bool { return p.to.Addr() == addrB }
	sent := len(tb.net.sent)
	if err := tb.a.CheckLiveness("to-b"); err != nil {
		t.Fatal(err)
	}
	sent++ // the check itself
	var total time.Duration
	for n := 0; n <= 5; n++ {
		total += time.Duration(float64(4*time.Second) * pow18(n))
	}
	tb.advance(total - time.Second)
	if st := tb.a.Status(); len(st) != 1 || st[0].State != StateEstablished {
		t.Fatalf("given up too early: %+v", st)
	}
	if got := len(tb.net.sent) - sent; got != 5 {
		t.Errorf("%d retransmissions, want 5", got)
	}
	tb.advance(2 * time.Second)
	st := tb.a.Status()
	if len(st) != 1 || st[0].State != StateInitSent {
		t.Fatalf("after the peer died: %+v (want a restart)", st)
	}
}

func pow18(n int) float64 {
	f := 1.0
	for ; n > 0; n-- {
		f *= 1.8
	}
	return f
}

func TestManagerDPD(t *testing.T) {
	tb := newTestbed(t, func(pa, pb *Peer) { pb.DPDDelay = 30 * time.Second })
	if err := tb.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	tb.established(t)
	sent := len(tb.net.sent)
	tb.advance(31 * time.Second)
	got := tb.net.sent[sent:]
	if len(got) != 2 || got[0].from.Addr() != addrB || got[1].from.Addr() != addrA {
		t.Fatalf("liveness exchange: %d datagrams", len(got))
	}
	if h, _ := message.ParseHeader(got[0].data); h.Exchange != message.Informational {
		t.Errorf("exchange %v", h.Exchange)
	}
	tb.established(t)
}

func TestManagerRekeyTimers(t *testing.T) {
	tb := newTestbed(t, func(pa, pb *Peer) {
		pa.RekeyTime = time.Hour
		pa.ChildRekeyTime = map[string]time.Duration{"net": 20 * time.Minute}
	})
	if err := tb.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	first, _ := tb.established(t)
	tb.advance(21 * time.Minute)
	if tb.la.count("to-b:UP:net:rekey") != 1 || tb.lb.count("to-a:UP:net:rekey") != 1 ||
		tb.la.count("to-b:DOWN:net") != 1 || tb.lb.count("to-a:DOWN:net") != 1 {
		t.Fatalf("CHILD_SA rekey: %v / %v", tb.la.events, tb.lb.events)
	}
	tb.advance(40 * time.Minute) // 61 min: CHILD_SA rekeys at 40 and 60, the IKE SA at 60
	if tb.la.count("to-b:UP:net:rekey") != 3 {
		t.Fatalf("CHILD_SA rekeys by 61 min: %v", tb.la.events)
	}
	if len(tb.la.closed)+len(tb.lb.closed) != 0 {
		t.Errorf("a rekey's old CHILD_SA reported as closed by the peer: %v / %v", tb.la.closed, tb.lb.closed)
	}
	second, _ := tb.established(t)
	if second.SPIi == first.SPIi || len(second.Children) != 1 {
		t.Fatalf("IKE SA not rekeyed: %+v", second)
	}
	// The CHILD_SA timers followed the CHILD_SAs to the new IKE SA.
	tb.advance(20 * time.Minute)
	if tb.la.count("to-b:UP:net:rekey") != 4 || tb.lb.count("to-a:UP:net:rekey") != 4 {
		t.Fatalf("CHILD_SA rekeys after the IKE SA rekey: %v", tb.la.events)
	}
	third, _ := tb.established(t)
	if third.SPIi != second.SPIi || len(third.Children) != 1 {
		t.Fatalf("state after: %+v", third)
	}
	// A soft lifetime event from the dataplane rekeys on demand.
	if err := tb.b.RekeyChild("to-a", third.Children[0].OutboundSPI); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	if tb.lb.count("to-a:UP:net:rekey") != 5 {
		t.Fatalf("on-demand rekey: %v", tb.lb.events)
	}
	if err := tb.b.RekeyChild("to-a", 12345); err == nil {
		t.Error("rekey of an unknown SPI accepted")
	}
}

func TestManagerTerminateAndUnknownPeer(t *testing.T) {
	tb := newTestbed(t, nil)
	if err := tb.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	tb.established(t)
	if err := tb.a.Terminate("to-b"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	if len(tb.a.Status()) != 0 || len(tb.b.Status()) != 0 {
		t.Fatalf("after terminate: %+v / %+v", tb.a.Status(), tb.b.Status())
	}
	if tb.la.count("to-b:DOWN:net") != 1 || tb.lb.count("to-a:DOWN:net") != 1 {
		t.Errorf("events %v / %v", tb.la.events, tb.lb.events)
	}
	// B lost its CHILD_SA by A's DELETE (its close_action applies); A by
	// its own deletion.
	if len(tb.la.closed) != 0 || len(tb.lb.closed) != 1 || tb.lb.closed[0] != "to-a:net" {
		t.Errorf("closed by the peer: %v / %v", tb.la.closed, tb.lb.closed)
	}
	// An IKE_SA_INIT from an address no peer has gets no answer.
	stranger := netip.MustParseAddr("198.18.0.99")
	tb.net.members[stranger] = nil
	left, _ := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	s, err := NewInitiator(left, func(b []byte) error {
		return tb.net.sender(stranger)(netip.AddrPortFrom(addrB, 500), false, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	sent := len(tb.net.sent)
	s.Start()
	tb.net.pump()
	if len(tb.net.sent) != sent+1 {
		t.Errorf("the stranger got %d answers", len(tb.net.sent)-sent-1)
	}
}

// TestManagerPeerRestart: a peer that restarted initiates afresh with
// INITIAL_CONTACT; we drop the IKE SA and CHILD_SAs it has forgotten.
func TestManagerPeerRestart(t *testing.T) {
	tb := newTestbed(t, nil)
	if err := tb.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	first, _ := tb.established(t)
	// A restarts: a new manager on the same address, no memory.
	a2, err := NewManager(tb.a.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a2.Close)
	tb.a = a2
	tb.net.members[addrA] = a2
	if err := a2.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	second, _ := tb.established(t)
	if second.SPIi == first.SPIi {
		t.Fatal("no new IKE SA")
	}
	if tb.lb.count("to-a:DOWN:net") != 1 || tb.lb.count("to-a:UP:net") != 2 {
		t.Fatalf("B's events: %v", tb.lb.events)
	}
	b := tb.b
	b.mu.Lock()
	n := len(b.bySPI)
	b.mu.Unlock()
	if n != 1 {
		t.Errorf("B holds %d IKE SAs", n)
	}
}
