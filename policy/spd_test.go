package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
)

// sp compiles "10.0.0.0/8" or "10.0.0.5-10.0.0.9" with a protocol and a
// port range into a span, for tests that must not depend on the
// config package's selector syntax.
func sp(t testing.TB, addr string, proto uint8, lo, hi uint16) span {
	t.Helper()
	var s span
	if p, err := netip.ParsePrefix(addr); err == nil {
		p = p.Masked()
		s.lo, s.hi = p.Addr(), lastAddr(p)
	} else {
		a, b, ok := strings.Cut(addr, "-")
		if !ok {
			t.Fatalf("bad address %q", addr)
		}
		s.lo, s.hi = netip.MustParseAddr(a), netip.MustParseAddr(b)
	}
	s.proto, s.portLo, s.portHi = proto, lo, hi
	return s
}

func any4(t testing.TB, addr string) span { return sp(t, addr, 0, 0, 0xffff) }

func pol(t testing.TB, local, remote []span) *Policy {
	t.Helper()
	p, err := policyFromSpans(local, remote)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func tup(src, dst string, proto uint8, sport, dport uint16) Tuple {
	return Tuple{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: proto, SrcPort: sport, DstPort: dport}
}

func TestSPDLookupMostSpecific(t *testing.T) {
	var spd SPD[string]
	lan := []span{any4(t, "10.1.0.0/24")}
	spd.Install("wide", pol(t, lan, []span{any4(t, "10.0.0.0/8")}), "wide")
	spd.Install("site", pol(t, lan, []span{any4(t, "10.2.0.0/24")}), "site")
	spd.Install("web", pol(t, lan, []span{sp(t, "10.2.0.0/24", ProtoTCP, 443, 443)}), "web")
	spd.Install("host", pol(t, lan, []span{any4(t, "10.2.0.7/32")}), "host")
	spd.Install("range", pol(t, lan, []span{any4(t, "10.2.0.16-10.2.0.20")}), "range")
	spd.Install("one-host-lan", pol(t, []span{any4(t, "10.1.0.9/32")}, []span{any4(t, "10.2.0.0/24")}), "one-host-lan")
	spd.Install("v6", pol(t, []span{any4(t, "fd01::/64")}, []span{any4(t, "fd02::/64")}), "v6")

	tests := []struct {
		tuple Tuple
		want  string // "" = no entry
	}{
		{tup("10.1.0.2", "10.2.0.2", ProtoICMP, 0x800, 0x800), "site"},
		{tup("10.1.0.2", "10.2.0.2", ProtoTCP, 40000, 443), "web"},
		{tup("10.1.0.2", "10.2.0.2", ProtoUDP, 40000, 443), "site"},
		{tup("10.1.0.2", "10.2.0.2", ProtoTCP, 40000, 444), "site"},
		{tup("10.1.0.2", "10.2.0.7", ProtoTCP, 40000, 443), "host"},
		{tup("10.1.0.2", "10.2.0.18", ProtoTCP, 1, 1), "range"},
		{tup("10.1.0.2", "10.3.0.1", ProtoTCP, 1, 1), "wide"},
		{tup("10.1.0.9", "10.2.0.2", ProtoTCP, 1, 1), "one-host-lan"},
		{tup("10.1.1.2", "10.2.0.2", ProtoTCP, 1, 1), ""},
		{tup("192.0.2.1", "10.2.0.2", ProtoTCP, 1, 1), ""},
		{tup("fd01::5", "fd02::9", ProtoUDP, 1, 1), "v6"},
		{tup("fd01::5", "fd03::9", ProtoUDP, 1, 1), ""},
		// An IPv4-mapped address is not the IPv4 address: no cross-family match.
		{tup("::ffff:10.1.0.2", "::ffff:10.2.0.2", ProtoUDP, 1, 1), ""},
		// A non-first fragment has no ports: it cannot match the port-443 entry.
		{Tuple{Src: netip.MustParseAddr("10.1.0.2"), Dst: netip.MustParseAddr("10.2.0.2"), Proto: ProtoTCP, Opaque: true}, "site"},
	}
	for _, tt := range tests {
		v, name, ok := spd.Lookup(tt.tuple)
		if tt.want == "" {
			if ok {
				t.Errorf("%v: got %q, want no entry", tt.tuple, name)
			}
			continue
		}
		if !ok || v != tt.want || name != tt.want {
			t.Errorf("%v: got %q (%v), want %q", tt.tuple, name, ok, tt.want)
		}
	}
}

func TestSPDInstallOrderBreaksTies(t *testing.T) {
	// Two entries with identical selectors: the first installed wins, in
	// any insertion pattern, and re-installing it keeps its rank.
	mk := func(order ...string) *SPD[string] {
		var spd SPD[string]
		for _, n := range order {
			spd.Install(n, pol(t, []span{any4(t, "10.1.0.0/24")}, []span{any4(t, "10.2.0.0/24")}), n)
		}
		return &spd
	}
	pkt := tup("10.1.0.2", "10.2.0.2", ProtoTCP, 1, 2)
	for range 20 {
		spd := mk("a", "b", "c")
		if _, n, _ := spd.Lookup(pkt); n != "a" {
			t.Fatalf("got %q, want a", n)
		}
		spd.Install("a", pol(t, []span{any4(t, "10.1.0.0/24")}, []span{any4(t, "10.2.0.0/24")}), "a-rekeyed")
		if v, n, _ := spd.Lookup(pkt); n != "a" || v != "a-rekeyed" {
			t.Fatalf("after re-install got %q=%q, want a=a-rekeyed", n, v)
		}
		if !spd.Remove("a") || spd.Remove("a") {
			t.Fatal("Remove must report presence exactly once")
		}
		if _, n, _ := spd.Lookup(pkt); n != "b" {
			t.Fatalf("after remove got %q, want b", n)
		}
		if got := spd.Names(); !slices.Equal(got, []string{"b", "c"}) {
			t.Fatalf("Names = %v", got)
		}
	}
}

func TestPolicyInboundOutbound(t *testing.T) {
	p := pol(t, []span{any4(t, "10.1.0.0/24"), any4(t, "fd01::/64")},
		[]span{any4(t, "10.2.0.0/24"), sp(t, "fd02::/64", ProtoTCP, 22, 22)})
	tests := []struct {
		tuple   Tuple
		in, out bool
	}{
		{tup("10.2.0.2", "10.1.0.2", ProtoICMP, 0, 0), true, false},
		{tup("10.1.0.2", "10.2.0.2", ProtoICMP, 0, 0), false, true},
		{tup("10.2.0.2", "10.1.1.2", ProtoICMP, 0, 0), false, false},
		{tup("10.3.0.2", "10.1.0.2", ProtoICMP, 0, 0), false, false},
		{tup("fd02::1", "fd01::1", ProtoTCP, 22, 5555), true, false},
		{tup("fd02::1", "fd01::1", ProtoTCP, 23, 5555), false, false},
		{tup("fd01::1", "fd02::1", ProtoTCP, 5555, 22), false, true},
		{tup("fd02::1", "fd01::1", ProtoUDP, 22, 5555), false, false},
	}
	for _, tt := range tests {
		if got := p.MatchInbound(tt.tuple); got != tt.in {
			t.Errorf("MatchInbound(%v) = %v, want %v", tt.tuple, got, tt.in)
		}
		if got := p.MatchOutbound(tt.tuple); got != tt.out {
			t.Errorf("MatchOutbound(%v) = %v, want %v", tt.tuple, got, tt.out)
		}
	}
}

func TestPolicyFromSpansRejects(t *testing.T) {
	good := any4(t, "10.1.0.0/24")
	mixed := span{lo: netip.MustParseAddr("10.0.0.1"), hi: netip.MustParseAddr("fd00::1"), portHi: 0xffff}
	backwards := span{lo: netip.MustParseAddr("10.0.0.9"), hi: netip.MustParseAddr("10.0.0.1"), portHi: 0xffff}
	for _, c := range []struct {
		name          string
		local, remote []span
	}{
		{"no local", nil, []span{good}},
		{"no remote", []span{good}, nil},
		{"mixed family", []span{good}, []span{mixed}},
		{"backwards range", []span{backwards}, []span{good}},
		{"zero span", []span{good}, []span{{}}},
	} {
		if _, err := policyFromSpans(c.local, c.remote); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

func TestRangeToPrefixes(t *testing.T) {
	tests := []struct {
		lo, hi string
		want   []string
	}{
		{"10.2.0.0", "10.2.0.255", []string{"10.2.0.0/24"}},
		{"10.2.0.5", "10.2.0.5", []string{"10.2.0.5/32"}},
		{"10.2.0.1", "10.2.0.6", []string{"10.2.0.1/32", "10.2.0.2/31", "10.2.0.4/31", "10.2.0.6/32"}},
		{"0.0.0.0", "255.255.255.255", []string{"0.0.0.0/0"}},
		{"255.255.255.254", "255.255.255.255", []string{"255.255.255.254/31"}},
		{"fd02::", "fd02::ffff:ffff:ffff:ffff", []string{"fd02::/64"}},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", []string{"::/0"}},
	}
	for _, tt := range tests {
		var got []string
		for _, p := range rangeToPrefixes(netip.MustParseAddr(tt.lo), netip.MustParseAddr(tt.hi)) {
			got = append(got, p.String())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s-%s: got %v, want %v", tt.lo, tt.hi, got, tt.want)
		}
	}
}

func TestSPDLookupDoesNotAllocate(t *testing.T) {
	var spd SPD[int]
	for i := range 16 {
		spd.Install(fmt.Sprint(i), pol(t, []span{any4(t, "10.1.0.0/24")}, []span{any4(t, fmt.Sprintf("10.2.%d.0/24", i))}), i)
	}
	pkt := tup("10.1.0.2", "10.2.15.2", ProtoTCP, 1, 2)
	if n := testing.AllocsPerRun(100, func() { spd.Lookup(pkt) }); n != 0 {
		t.Fatalf("Lookup allocates %v times", n)
	}
}

// TestSPDConcurrentReaders runs lookups while entries are replaced; with
// -race it checks that readers never see a torn table.
func TestSPDConcurrentReaders(t *testing.T) {
	var spd SPD[int]
	p := pol(t, []span{any4(t, "10.1.0.0/24")}, []span{any4(t, "10.2.0.0/24")})
	spd.Install("lan", p, 0)
	pkt := tup("10.1.0.2", "10.2.0.2", ProtoTCP, 1, 2)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, ok := spd.Lookup(pkt); !ok {
					t.Error("lookup found no entry during a replace")
					return
				}
			}
		})
	}
	for i := range 1000 {
		spd.Install("lan", p, i)
		spd.Install(fmt.Sprint("other", i%3), p, -1)
	}
	close(stop)
	wg.Wait()
}

func BenchmarkSPDLookup(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var spd SPD[int]
			for i := range n {
				spd.Install(fmt.Sprint(i), pol(b, []span{any4(b, "10.1.0.0/24")},
					[]span{any4(b, fmt.Sprintf("10.%d.%d.0/24", 2+i/256, i%256))}), i)
			}
			// The last entry in specificity order is the worst case.
			pkt := tup("10.1.0.2", fmt.Sprintf("10.%d.%d.2", 2+(n-1)/256, (n-1)%256), ProtoTCP, 1, 2)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, ok := spd.Lookup(pkt); !ok {
					b.Fatal("miss")
				}
			}
		})
	}
}

func TestNewPolicyFromSelectors(t *testing.T) {
	parse := func(ss ...string) []Selector {
		var out []Selector
		for _, s := range ss {
			sel, err := ParseSelector(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, sel)
		}
		return out
	}
	p, err := NewPolicy(parse("10.1.0.0/24", "fd01::/64"), parse("10.2.0.0/24[tcp/443]", "10.2.0.5-10.2.0.9", "fd02::/64[udp/opaque]"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		tuple Tuple
		out   bool
	}{
		{tup("10.1.0.2", "10.2.0.2", ProtoTCP, 5555, 443), true},
		{tup("10.1.0.2", "10.2.0.2", ProtoTCP, 5555, 80), false},
		{tup("10.1.0.2", "10.2.0.7", ProtoTCP, 5555, 80), true},
		{tup("fd01::1", "fd02::1", ProtoUDP, 5555, 53), false},
		{Tuple{Src: netip.MustParseAddr("fd01::1"), Dst: netip.MustParseAddr("fd02::1"), Proto: ProtoUDP, Opaque: true}, true},
		{Tuple{Src: netip.MustParseAddr("10.1.0.1"), Dst: netip.MustParseAddr("10.2.0.1"), Proto: ProtoTCP, Opaque: true}, false},
	}
	for _, tt := range tests {
		if got := p.MatchOutbound(tt.tuple); got != tt.out {
			t.Errorf("MatchOutbound(%v) = %v, want %v", tt.tuple, got, tt.out)
		}
	}
	if got := p.Remote(); len(got) != 5 || got[0].String() != "10.2.0.0/24" || got[1].String() != "10.2.0.5/32" {
		t.Errorf("Remote() = %v", got)
	}
	if _, err := NewPolicy(nil, parse("10.2.0.0/24")); err == nil {
		t.Error("accepted empty local selectors")
	}
	if _, err := NewPolicy(parse("10.2.0.0/24"), []Selector{{}}); err == nil {
		t.Error("accepted zero selector")
	}
}
