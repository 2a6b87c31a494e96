package ike

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/internal/netns"
	"github.com/isle-ipsec/isle/internal/swan"
	"github.com/isle-ipsec/isle/internal/testenv"
	"github.com/isle-ipsec/isle/sa"
)

// The interop tests negotiate with a real strongSwan 5.9.8 (charon) in the
// netns lab: isle's IKESA runs in this process on UDP sockets opened inside
// the gl namespace, charon in gr. Both must end up with the same IKE SA and
// CHILD_SA: SPIs from charon's vici listing, keys from its log.

// listenIn opens a UDP socket inside a named network namespace. The socket
// stays in that namespace; the thread is switched back, or dies if it
// cannot be.
func listenIn(ns string, addr netip.AddrPort) (*net.UDPConn, error) {
	type result struct {
		c   *net.UDPConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			ch <- result{err: err}
			runtime.UnlockOSThread()
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			ch <- result{err: err}
			runtime.UnlockOSThread()
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", ns, err)}
			runtime.UnlockOSThread()
			return
		}
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // else the goroutine exits locked and the thread is dropped
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

type datagram struct {
	natt bool // arrived on port 4500 (non-ESP marker removed)
	data []byte
}

// udpEndpoint is a minimal IKE socket pair (ports 500 and 4500, RFC 3948
// non-ESP marker on 4500) for the tests; the gateway has the real one.
type udpEndpoint struct {
	c500, c4500 *net.UDPConn
	remote      netip.Addr
	in          chan datagram
	lastNATT    bool                // port of the last datagram received, for replies
	route       func([]byte) *IKESA // when set, picks the IKE SA for a datagram
}

func newUDPEndpoint(t *testing.T, ns string, local, remote netip.Addr) *udpEndpoint {
	t.Helper()
	e := &udpEndpoint{remote: remote, in: make(chan datagram, 64)}
	var err error
	if e.c500, err = listenIn(ns, netip.AddrPortFrom(local, 500)); err != nil {
		t.Fatal(err)
	}
	if e.c4500, err = listenIn(ns, netip.AddrPortFrom(local, 4500)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.c500.Close(); e.c4500.Close() })
	read := func(c *net.UDPConn, natt bool) {
		buf := make([]byte, 65536)
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			b := buf[:n]
			if natt {
				if len(b) < 4 || !bytes.Equal(b[:4], []byte{0, 0, 0, 0}) {
					continue // ESP, not for IKE
				}
				b = b[4:]
			}
			e.in <- datagram{natt, append([]byte(nil), b...)}
		}
	}
	go read(e.c500, false)
	go read(e.c4500, true)
	return e
}

func (e *udpEndpoint) send(natt bool, b []byte) error {
	if natt {
		_, err := e.c4500.WriteToUDPAddrPort(append([]byte{0, 0, 0, 0}, b...), netip.AddrPortFrom(e.remote, 4500))
		return err
	}
	_, err := e.c500.WriteToUDPAddrPort(b, netip.AddrPortFrom(e.remote, 500))
	return err
}

// drive feeds received datagrams to the IKE SA until done reports true.
func (e *udpEndpoint) drive(t *testing.T, s func() *IKESA, newSA func() *IKESA, done func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !done() {
		select {
		case d := <-e.in:
			e.lastNATT = d.natt
			sa := s()
			if e.route != nil {
				sa = e.route(d.data)
			}
			if sa == nil {
				sa = newSA()
			}
			if err := sa.Handle(d.data); err != nil {
				t.Logf("isle: %v", err)
			}
		case <-deadline:
			t.Fatal("no result from the negotiation in 20s")
		}
	}
}

var interopSuites = []struct{ ike, esp string }{
	{"aes128gcm16-prfsha256-x25519", "aes128gcm16"},
	{"aes256-sha256-modp2048", "aes256-sha256"},
	{"chacha20poly1305-prfsha512-ecp384", "chacha20poly1305"},
	{"aes256gcm16-prfsha384-ecp256", "aes256gcm16"},
	{"aes128gcm16-prfsha256-ecp256", "aes128gcm16-modp2048"}, // PFS when rekeying
}

func charonConfig(ike, esp string) swan.Config {
	return swan.Config{
		Connections: []swan.Connection{{
			Name: "s2s", Version: 2,
			LocalAddrs: []string{netns.WanGR4}, RemoteAddrs: []string{netns.WanGL4},
			Proposals: []string{ike}, Encap: true,
			Local:  swan.Auth{Auth: "psk", ID: "gw-right"},
			Remote: swan.Auth{Auth: "psk", ID: "gw-left"},
			Children: []swan.Child{{Name: "net", LocalTS: []string{netns.RightLAN4}, RemoteTS: []string{netns.LeftLAN4},
				ESPProposals: []string{esp}}},
		}},
		Secrets: []swan.Secret{{Type: "ike", IDs: []string{"gw-left", "gw-right"}, Secret: "lab-psk-0123456789"}},
	}
}

// checkIKESPIs waits until charon lists an established IKE SA with our
// SPIs (after a rekey the old one may linger briefly).
func checkIKESPIs(t *testing.T, c *swan.Charon, s *IKESA) {
	t.Helper()
	spii, spir := s.SPIs()
	want := fmt.Sprintf("%016x %016x", spii, spir)
	var got []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		sas, err := c.SAs()
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, sa := range sas {
			got = append(got, sa.State+" "+sa.InitiatorSPI+" "+sa.ResponderSPI)
			if sa.State == "ESTABLISHED" && sa.InitiatorSPI+" "+sa.ResponderSPI == want {
				t.Logf("IKE SA %s agrees with charon's", want)
				return
			}
		}
	}
	t.Fatalf("charon has no IKE SA %s: %v", want, got)
}

// checkAgainstCharon compares our IKE SA and CHILD_SA with charon's.
func checkAgainstCharon(t *testing.T, c *swan.Charon, s *IKESA, ours *ChildSA) {
	t.Helper()
	if s.State() != StateEstablished || ours == nil {
		t.Fatalf("isle: %v, child %v (%v)", s.Err(), ours, s.ChildErr())
	}
	ike, child, err := c.WaitChild("net", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	spii, spir := s.SPIs()
	if ike.InitiatorSPI != fmt.Sprintf("%016x", spii) || ike.ResponderSPI != fmt.Sprintf("%016x", spir) {
		t.Errorf("IKE SPIs: charon %s_i %s_r, isle %016x %016x", ike.InitiatorSPI, ike.ResponderSPI, spii, spir)
	}
	if child.SPIIn != ours.OutboundSPI || child.SPIOut != ours.InboundSPI {
		t.Errorf("CHILD_SA SPIs: charon in %08x out %08x, isle in %08x out %08x", child.SPIIn, child.SPIOut, ours.InboundSPI, ours.OutboundSPI)
	}
	if got := strings.Join(child.LocalTS, ",") + " " + strings.Join(child.RemoteTS, ","); got != "10.2.0.0/24 10.1.0.0/24" {
		t.Errorf("charon's CHILD_SA selectors: %s", got)
	}
	t.Logf("CHILD_SA %08x/%08x (%v %v PFS %v) agrees with charon's", ours.InboundSPI, ours.OutboundSPI, ours.Enc, ours.Integ, ours.PFS)
	all, err := c.ChildKeys()
	if err != nil || len(all) == 0 {
		t.Fatalf("charon's CHILD_SA keys: %v (%d)", err, len(all))
	}
	k := all[len(all)-1]
	if !bytes.Equal(k.EncrIn, ours.OutboundEncKey) || !bytes.Equal(k.EncrOut, ours.InboundEncKey) ||
		!bytes.Equal(k.IntegIn, ours.OutboundIntegKey) || !bytes.Equal(k.IntegOut, ours.InboundIntegKey) {
		t.Errorf("CHILD_SA keys differ from charon's (%s/%s)", k.EncrAlg, k.IntegAlg)
	}
}

func TestInteropStrongSwan(t *testing.T) {
	if testenv.Short() {
		t.Skip("namespace test: not in -short")
	}
	swan.Require(t)
	for n, suite := range interopSuites {
		t.Run("isle-initiates/"+suite.ike, func(t *testing.T) {
			topo := netns.NewTopology(t, fmt.Sprintf("iki%d", n))
			c := swan.Start(t, topo, netns.GR, charonConfig(suite.ike, suite.esp), swan.Options{})
			left, _ := pair(t, suite.ike, suite.esp)
			e := newUDPEndpoint(t, topo.NS(netns.GL), netip.MustParseAddr(netns.WanGL4), netip.MustParseAddr(netns.WanGR4))
			var s *IKESA
			s, err := NewInitiator(left, func(b []byte) error {
				nl, nr := s.NATDetected()
				return e.send(nl || nr, b)
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			e.drive(t, func() *IKESA { return s }, nil, func() bool { return s.State() >= StateEstablished })
			checkAgainstCharon(t, c, s, s.ChildSA())
			// Charon answers our liveness check.
			if err := s.CheckLiveness(); err != nil {
				t.Fatal(err)
			}
			e.drive(t, func() *IKESA { return s }, nil, func() bool { return s.lastRequest == nil })
			// We rekey the CHILD_SA; charon takes the new one and deletes the old.
			old := s.Children()[0]
			if err := s.RekeyChild(old); err != nil {
				t.Fatal(err)
			}
			e.drive(t, func() *IKESA { return s }, nil, func() bool {
				return s.lastRequest == nil && len(s.Children()) == 1 && s.Children()[0] != old
			})
			checkAgainstCharon(t, c, s, s.Children()[0])
			// Charon rekeys it; we answer the CREATE_CHILD_SA and its delete.
			old = s.Children()[0]
			if err := c.Rekey("net"); err != nil {
				t.Fatal(err)
			}
			e.drive(t, func() *IKESA { return s }, nil, func() bool { return len(s.Children()) == 1 && s.Children()[0] != old })
			checkAgainstCharon(t, c, s, s.Children()[0])

			// We rekey the IKE SA, then a CHILD_SA under the new one: its
			// keys come from the new SK_d, so charon must agree on it too.
			if err := s.Rekey(); err != nil {
				t.Fatal(err)
			}
			e.drive(t, func() *IKESA { return s }, nil, func() bool { return s.Successor() != nil && s.lastRequest == nil })
			s = s.Successor()
			checkIKESPIs(t, c, s)
			if err := s.RekeyChild(s.Children()[0]); err != nil {
				t.Fatal(err)
			}
			old = s.Children()[0]
			e.drive(t, func() *IKESA { return s }, nil, func() bool {
				return s.lastRequest == nil && len(s.Children()) == 1 && s.Children()[0] != old
			})
			checkAgainstCharon(t, c, s, s.Children()[0])

			// Charon rekeys the IKE SA, then the CHILD_SA.
			if out, err := c.Swanctl("--rekey", "--ike", "s2s"); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			prev := s
			e.route = func(b []byte) *IKESA {
				// The old IKE SA's delete still comes on the old SPIs.
				if n := prev.Successor(); n != nil {
					if h, err := message.ParseHeader(b); err == nil && h.SPIi == n.spii && h.SPIr == n.spir {
						return n
					}
				}
				return prev
			}
			e.drive(t, func() *IKESA { return prev }, nil, func() bool { return prev.Successor() != nil && prev.State() == StateDeleted })
			e.route = nil
			s = prev.Successor()
			checkIKESPIs(t, c, s)
			old = s.Children()[0]
			if err := c.Rekey("net"); err != nil {
				t.Fatal(err)
			}
			e.drive(t, func() *IKESA { return s }, nil, func() bool { return len(s.Children()) == 1 && s.Children()[0] != old })
			checkAgainstCharon(t, c, s, s.Children()[0])
		})
		t.Run("strongswan-initiates/"+suite.ike, func(t *testing.T) {
			topo := netns.NewTopology(t, fmt.Sprintf("ikr%d", n))
			c := swan.Start(t, topo, netns.GR, charonConfig(suite.ike, suite.esp), swan.Options{})
			left, _ := pair(t, suite.ike, suite.esp)
			// Accept every proposal we support, as a responder with
			// defaults would; charon's choice must still be honoured.
			left.IKEProposals = append(mustProposals(t, sa.ProtoIKE, suite.ike), left.IKEProposals...)
			e := newUDPEndpoint(t, topo.NS(netns.GL), netip.MustParseAddr(netns.WanGL4), netip.MustParseAddr(netns.WanGR4))
			var s *IKESA
			newSA := func() *IKESA {
				var err error
				s, err = NewResponder(left, func(b []byte) error { return e.send(e.lastNATT, b) })
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			initErr := make(chan error, 1)
			go func() { initErr <- c.Initiate("net", 15*time.Second) }()
			e.drive(t, func() *IKESA { return s }, newSA, func() bool { return s != nil && s.State() >= StateEstablished })
			if err := <-initErr; err != nil {
				t.Fatalf("charon: %v", err)
			}
			checkAgainstCharon(t, c, s, s.ChildSA())
			// Charon deletes the IKE SA; we answer and drop ours.
			termErr := make(chan error, 1)
			go func() { termErr <- c.Terminate("s2s", 10*time.Second) }()
			e.drive(t, func() *IKESA { return s }, nil, func() bool { return s.State() == StateDeleted })
			if err := <-termErr; err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("charon terminate: %v", err)
			}
		})
	}
}

// TestInteropManager runs the Manager with real timers against charon:
// it initiates, rekeys the CHILD_SA on its own timer, follows charon's
// IKE SA rekey, and terminates.
func TestInteropManager(t *testing.T) {
	if testenv.Short() {
		t.Skip("namespace test: not in -short")
	}
	swan.Require(t)
	const ikeProp, espProp = "aes128gcm16-prfsha256-x25519", "aes128gcm16"
	topo := netns.NewTopology(t, "ikm")
	c := swan.Start(t, topo, netns.GR, charonConfig(ikeProp, espProp), swan.Options{})
	left, _ := pair(t, ikeProp, espProp)
	remote := netip.MustParseAddr(netns.WanGR4)
	e := newUDPEndpoint(t, topo.NS(netns.GL), netip.MustParseAddr(netns.WanGL4), remote)

	var mu sync.Mutex
	var ups []*ChildSA
	m, err := NewManager(ManagerConfig{
		Peers: []Peer{{Name: "gr", Config: left, Remote: netip.AddrPortFrom(remote, 500), DPDDelay: time.Second,
			ChildRekeyTime: map[string]time.Duration{"net": 2 * time.Second}}},
		Send: func(to netip.AddrPort, natt bool, b []byte) error { return e.send(natt, b) },
		OnChild: func(_ string, ev ChildEvent) {
			mu.Lock()
			defer mu.Unlock()
			if ev.Kind == ChildUp {
				ups = append(ups, ev.Child)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	go func() {
		for d := range e.in {
			port := uint16(500)
			if d.natt {
				port = 4500
			}
			m.Handle(netip.AddrPortFrom(remote, port), d.natt, d.data)
		}
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timeout waiting for %s; status %+v", what, m.Status())
			}
		}
	}
	latest := func() (int, *ChildSA) {
		mu.Lock()
		defer mu.Unlock()
		if len(ups) == 0 {
			return 0, nil
		}
		return len(ups), ups[len(ups)-1]
	}
	if err := m.Initiate("gr"); err != nil {
		t.Fatal(err)
	}
	waitFor("the first CHILD_SA", func() bool { n, _ := latest(); return n >= 1 })
	st := m.Status()[0]
	if !st.NATLocal && !st.NATRemote {
		t.Error("charon's encap = yes should look like a NAT")
	}
	_, first := latest()
	checkAgainstCharonChild(t, c, first)

	waitFor("a CHILD_SA rekey by our timer", func() bool { n, _ := latest(); return n >= 2 })
	_, second := latest()
	checkAgainstCharonChild(t, c, second)

	before := m.Status()[0]
	if out, err := c.Swanctl("--rekey", "--ike", "s2s"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	waitFor("charon's IKE SA rekey", func() bool {
		st := m.Status()
		return len(st) == 1 && st[0].SPIi != before.SPIi && st[0].State == StateEstablished
	})
	n, _ := latest()
	waitFor("a CHILD_SA rekey under the new IKE SA", func() bool { k, _ := latest(); return k > n })
	_, third := latest()
	checkAgainstCharonChild(t, c, third)

	if err := m.Terminate("gr"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		sas, err := c.SAs()
		if err == nil && len(sas) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("charon still has %v", sas)
		}
	}
}

// checkAgainstCharonChild waits until charon has installed the CHILD_SA
// ours mirrors, and compares the keys.
func checkAgainstCharonChild(t *testing.T, c *swan.Charon, ours *ChildSA) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		all, err := c.ChildKeys()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range all {
			if k.SPIIn == ours.OutboundSPI && k.SPIOut == ours.InboundSPI {
				if !bytes.Equal(k.EncrIn, ours.OutboundEncKey) || !bytes.Equal(k.EncrOut, ours.InboundEncKey) {
					t.Fatalf("CHILD_SA %08x: keys differ from charon's", ours.InboundSPI)
				}
				t.Logf("CHILD_SA %08x/%08x agrees with charon's", ours.InboundSPI, ours.OutboundSPI)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("charon never installed CHILD_SA %08x/%08x", ours.InboundSPI, ours.OutboundSPI)
		}
	}
}
