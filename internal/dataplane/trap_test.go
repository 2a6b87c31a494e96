package dataplane

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/isle-ipsec/isle/policy"
)

// TestNoPolicyHook: a packet no child covers is counted as no_policy and
// its tuple handed to Config.NoPolicy; a covered packet is not.
func TestNoPolicyHook(t *testing.T) {
	lt, rt := tuntest.NewChannelTUN(), tuntest.NewChannelTUN()
	got := make(chan policy.Tuple, 4)
	left := newDataplane(Config{Interface: "mem", MTU: 1400, OuterMTU: 1500, Logger: quiet(),
		NoPolicy: func(tp policy.Tuple) {
			select {
			case got <- tp:
			default:
			}
		}}, lt.TUN(), nil)
	left.wg.Add(1)
	go left.tunLoop()
	t.Cleanup(func() { left.Close() })
	right := newMemory(t, rt.TUN(), 1500)
	connect(left, right, nil)
	connect(right, left, nil)

	lt.Outbound <- udpPacket(t, "10.1.0.2", "10.2.0.9", 10, false)
	waitDrop(t, left, DropNoPolicy, 1)
	select {
	case tp := <-got:
		want := policy.Tuple{Src: netip.MustParseAddr("10.1.0.2"), Dst: netip.MustParseAddr("10.2.0.9"),
			Proto: 17, SrcPort: 1234, DstPort: 5678}
		if tp != want {
			t.Errorf("NoPolicy got %+v, want %+v", tp, want)
		}
	case <-time.After(waitLimit):
		t.Fatal("NoPolicy not called")
	}

	pair(t, left, right, suites["aes-gcm-128"])
	pkt := udpPacket(t, "10.1.0.2", "10.2.0.9", 10, false)
	lt.Outbound <- pkt
	recv(t, rt.Inbound)
	select {
	case tp := <-got:
		t.Errorf("NoPolicy called for a packet a child covers: %+v", tp)
	default:
	}
	if n := left.ctr.drops[DropNoPolicy].Load(); n != 1 {
		t.Errorf("no_policy = %d, want 1", n)
	}
}

// TestTrapBookkeeping: traps are listed by name, replaced by name, and
// refused with bad selectors or after Close (in memory: no routes).
func TestTrapBookkeeping(t *testing.T) {
	d := newMemory(t, tuntest.NewChannelTUN().TUN(), 1500)
	if err := d.AddTrap("a/x", sels(t, "10.1.0.0/24"), sels(t, "10.2.0.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := d.AddTrap("a/x", sels(t, "10.1.0.0/24"), sels(t, "10.3.0.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := d.AddTrap("b/y", nil, sels(t, "10.3.0.0/24")); err == nil {
		t.Error("a trap without local selectors was accepted")
	}
	if got := strings.Join(d.Traps(), ","); got != "a/x" {
		t.Errorf("Traps = %q, want a/x", got)
	}
	if !d.RemoveTrap("a/x") || d.RemoveTrap("a/x") {
		t.Error("RemoveTrap: want true once, then false")
	}
	d.Close()
	if err := d.AddTrap("a/x", sels(t, "10.1.0.0/24"), sels(t, "10.2.0.0/24")); err == nil {
		t.Error("AddTrap after Close succeeded")
	}
}

// TestTrapKernelState: a trap routes its remote selectors into the TUN
// device and adds the protection rules; a child over the same selectors
// that comes and goes leaves them in place while the trap stays; removing
// the trap removes them.
func TestTrapKernelState(t *testing.T) {
	const ns = "tp20"
	inNamespace(t, ns, func() {
		ipOut(t, ns, "link", "add", "tp20wan", "type", "veth", "peer", "name", "tp20peer")
		ipOut(t, ns, "addr", "add", "198.18.0.1/24", "dev", "tp20wan")
		d, err := New(Config{Interface: "isle0", MTU: 1400, OuterMTU: 1500, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		has := func(when string, want bool) {
			t.Helper()
			routes := ipOut(t, ns, "route")
			rules := ipOut(t, ns, "rule")
			gotRoute := strings.Contains(routes, "10.2.0.0/24 dev isle0")
			gotRule := strings.Contains(rules, "from 10.2.0.0/24 to 10.1.0.0/24 blackhole") &&
				strings.Contains(rules, "from 10.2.0.0/24 to 10.1.0.0/24 iif isle0 lookup main")
			if gotRoute != want || gotRule != want {
				t.Errorf("%s: want route and rules = %v; routes:\n%s\nrules:\n%s", when, want, routes, rules)
			}
		}
		has("before the trap", false)
		if err := d.AddTrap("c", sels(t, "10.1.0.0/24"), sels(t, "10.2.0.0/24")); err != nil {
			t.Fatal(err)
		}
		has("trap installed", true)
		k := suites["aes-gcm-128"]
		c := Child{Name: "c", Local: sels(t, "10.1.0.0/24"), Remote: sels(t, "10.2.0.0/24"),
			Out: mkSA(t, k, 0x1001, false, "198.18.0.1:0", "198.18.0.2:0", 1),
			In:  mkSA(t, k, 0x2001, true, "198.18.0.1:0", "198.18.0.2:0", 2)}
		if err := d.AddChild(c); err != nil {
			t.Fatal(err)
		}
		has("trap and child", true)
		d.RemoveChild("c")
		has("child removed, trap stays", true)
		if err := d.AddChild(c); err != nil {
			t.Fatal(err)
		}
		d.RemoveTrap("c")
		has("trap removed, child stays", true)
		d.RemoveChild("c")
		has("both removed", false)
		if err := d.AddTrap("c", sels(t, "10.1.0.0/24"), sels(t, "10.2.0.0/24")); err != nil {
			t.Fatal(err)
		}
		d.Close()
		if rules := ipOut(t, ns, "rule"); strings.Contains(rules, "blackhole") {
			t.Errorf("rules after Close:\n%s", rules)
		}
	})
}
