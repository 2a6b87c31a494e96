package policy

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseSelector(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		in   string
		want Selector
		str  string // canonical String(); "" = same as in
	}{
		{"10.1.0.0/24", Selector{a("10.1.0.0"), a("10.1.0.255"), 0, 0, 0xffff}, ""},
		{"10.1.0.7/24", Selector{a("10.1.0.0"), a("10.1.0.255"), 0, 0, 0xffff}, "10.1.0.0/24"},
		{"0.0.0.0/0", Selector{a("0.0.0.0"), a("255.255.255.255"), 0, 0, 0xffff}, ""},
		{"10.1.0.7", Selector{a("10.1.0.7"), a("10.1.0.7"), 0, 0, 0xffff}, "10.1.0.7/32"},
		{"10.1.0.5-10.1.0.9", Selector{a("10.1.0.5"), a("10.1.0.9"), 0, 0, 0xffff}, ""},
		{"10.1.0.0-10.1.0.255", Selector{a("10.1.0.0"), a("10.1.0.255"), 0, 0, 0xffff}, "10.1.0.0/24"},
		{"10.1.0.0-10.1.1.255", Selector{a("10.1.0.0"), a("10.1.1.255"), 0, 0, 0xffff}, "10.1.0.0/23"},
		{"10.1.0.1-10.1.1.0", Selector{a("10.1.0.1"), a("10.1.1.0"), 0, 0, 0xffff}, ""},
		{"fd00:1::/64", Selector{a("fd00:1::"), a("fd00:1::ffff:ffff:ffff:ffff"), 0, 0, 0xffff}, ""},
		{"::/0", Selector{a("::"), a("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 0, 0, 0xffff}, ""},
		{"fd00::1-fd00::9", Selector{a("fd00::1"), a("fd00::9"), 0, 0, 0xffff}, ""},
		{"fd00::1", Selector{a("fd00::1"), a("fd00::1"), 0, 0, 0xffff}, "fd00::1/128"},
		{"10.1.0.0/24[tcp]", Selector{a("10.1.0.0"), a("10.1.0.255"), 6, 0, 0xffff}, ""},
		{"10.1.0.0/24[tcp/443]", Selector{a("10.1.0.0"), a("10.1.0.255"), 6, 443, 443}, ""},
		{"10.1.0.0/24[tcp/https]", Selector{a("10.1.0.0"), a("10.1.0.255"), 6, 443, 443}, "10.1.0.0/24[tcp/443]"},
		{"10.1.0.0/24[udp/domain]", Selector{a("10.1.0.0"), a("10.1.0.255"), 17, 53, 53}, "10.1.0.0/24[udp/53]"},
		{"10.1.0.0/24[udp/1024-2048]", Selector{a("10.1.0.0"), a("10.1.0.255"), 17, 1024, 2048}, ""},
		{"10.1.0.0/24[udp/%any]", Selector{a("10.1.0.0"), a("10.1.0.255"), 17, 0, 0xffff}, "10.1.0.0/24[udp]"},
		{"10.1.0.0/24[udp/any]", Selector{a("10.1.0.0"), a("10.1.0.255"), 17, 0, 0xffff}, "10.1.0.0/24[udp]"},
		{"10.1.0.0/24[%any/53]", Selector{a("10.1.0.0"), a("10.1.0.255"), 0, 53, 53}, "10.1.0.0/24[any/53]"},
		{"10.1.0.0/24[any]", Selector{a("10.1.0.0"), a("10.1.0.255"), 0, 0, 0xffff}, "10.1.0.0/24"},
		{"10.1.0.0/24[udp/opaque]", Selector{a("10.1.0.0"), a("10.1.0.255"), 17, 0xffff, 0}, ""},
		{"10.1.0.0/24[icmp]", Selector{a("10.1.0.0"), a("10.1.0.255"), 1, 0, 0xffff}, ""},
		{"fd00::/8[icmp6]", Selector{a("fd00::"), a("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 58, 0, 0xffff}, "fd00::/8[ipv6-icmp]"},
		{"fd00::/8[ipv6-icmp/2048]", Selector{a("fd00::"), a("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 58, 2048, 2048}, ""},
		{"10.0.0.0/8[sctp/0x50]", Selector{a("10.0.0.0"), a("10.255.255.255"), 132, 80, 80}, "10.0.0.0/8[sctp/80]"},
		{"10.0.0.0/8[47]", Selector{a("10.0.0.0"), a("10.255.255.255"), 47, 0, 0xffff}, "10.0.0.0/8[gre]"},
		{"10.0.0.0/8[253]", Selector{a("10.0.0.0"), a("10.255.255.255"), 253, 0, 0xffff}, ""},
		{" 10.0.0.0/8 ", Selector{a("10.0.0.0"), a("10.255.255.255"), 0, 0, 0xffff}, "10.0.0.0/8"},
	}
	for _, tt := range tests {
		got, err := ParseSelector(tt.in)
		if err != nil {
			t.Errorf("ParseSelector(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseSelector(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		want := tt.str
		if want == "" {
			want = tt.in
		}
		if s := got.String(); s != want {
			t.Errorf("ParseSelector(%q).String() = %q, want %q", tt.in, s, want)
		}
	}
}

func TestParseSelectorErrors(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"", "no address"},
		{"[tcp]", "no address"},
		{"10.1.0.0/33", "bad CIDR prefix"},
		{"10.1.0.0/24/1", "bad CIDR prefix"},
		{"10.1.0/24", "bad CIDR prefix"},
		{"10.1.0.300", "bad address"},
		{"office", "bad address"},
		{"dynamic", "not supported"},
		{"10.1.0.9-10.1.0.5", "ends before it starts"},
		{"10.1.0.1-fd00::1", "mixes IPv4 and IPv6"},
		{"10.1.0.1-", "bad address range"},
		{"fe80::1%eth0", "bad address"},
		{"10.1.0.0/24[tcp", `without a closing "]"`},
		{"10.1.0.0/24[tcp]x", `without a closing "]"`},
		{"10.1.0.0/24[tpc]", `unknown protocol "tpc"`},
		{"10.1.0.0/24[256]", "unknown protocol"},
		{"10.1.0.0/24[tcp/65536]", "bad port"},
		{"10.1.0.0/24[tcp/nosuch]", "bad port"},
		{"10.1.0.0/24[tcp/2048-1024]", "ends before it starts"},
		{"10.1.0.0/24[tcp/1024-x]", "bad port range"},
		{"10.1.0.0/24[/80]", "empty protocol"},
		{"10.1.0.0/24[gre/80]", "has no ports"},
	}
	for _, tt := range tests {
		_, err := ParseSelector(tt.in)
		if err == nil {
			t.Errorf("ParseSelector(%q) succeeded, want error containing %q", tt.in, tt.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.in) {
			t.Errorf("ParseSelector(%q) error = %q, want it to name the input and contain %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestSelectorContains(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		sel   string
		addr  string
		proto uint8
		port  uint16
		want  bool
	}{
		{"10.1.0.0/24", "10.1.0.0", 6, 80, true},
		{"10.1.0.0/24", "10.1.0.255", 17, 53, true},
		{"10.1.0.0/24", "10.1.1.0", 6, 80, false},
		{"10.1.0.0/24", "10.0.255.255", 1, 0, false},
		{"10.1.0.0/24", "::ffff:10.1.0.1", 6, 80, true}, // IPv4-mapped form of a v4 packet address
		{"10.1.0.0/24", "fd00::1", 6, 80, false},
		{"fd00::/64", "10.1.0.1", 6, 80, false},
		{"fd00::/64", "fd00::ffff", 58, 0x8000, true},
		{"10.1.0.5-10.1.0.9", "10.1.0.5", 6, 1, true},
		{"10.1.0.5-10.1.0.9", "10.1.0.9", 6, 1, true},
		{"10.1.0.5-10.1.0.9", "10.1.0.10", 6, 1, false},
		{"10.1.0.5-10.1.0.9", "10.1.0.4", 6, 1, false},
		{"10.1.0.0/24[tcp]", "10.1.0.1", 6, 1, true},
		{"10.1.0.0/24[tcp]", "10.1.0.1", 17, 1, false},
		{"10.1.0.0/24[tcp/443]", "10.1.0.1", 6, 443, true},
		{"10.1.0.0/24[tcp/443]", "10.1.0.1", 6, 444, false},
		{"10.1.0.0/24[udp/1024-2048]", "10.1.0.1", 17, 1024, true},
		{"10.1.0.0/24[udp/1024-2048]", "10.1.0.1", 17, 2048, true},
		{"10.1.0.0/24[udp/1024-2048]", "10.1.0.1", 17, 2049, false},
		{"10.1.0.0/24[any/53]", "10.1.0.1", 17, 53, true},
		{"10.1.0.0/24[any/53]", "10.1.0.1", 47, 0, false}, // GRE has no ports
		{"10.1.0.0/24[udp/opaque]", "10.1.0.1", 17, 0, false},
	}
	for _, tt := range tests {
		sel, err := ParseSelector(tt.sel)
		if err != nil {
			t.Fatal(err)
		}
		if got := sel.Contains(a(tt.addr), tt.proto, tt.port); got != tt.want {
			t.Errorf("%s.Contains(%s, %d, %d) = %v, want %v", tt.sel, tt.addr, tt.proto, tt.port, got, tt.want)
		}
	}
}

func TestSelectorOpaque(t *testing.T) {
	addr := netip.MustParseAddr("10.1.0.1")
	for _, tt := range []struct {
		sel  string
		want bool
	}{
		{"10.1.0.0/24", true},
		{"10.1.0.0/24[udp]", true},
		{"10.1.0.0/24[udp/opaque]", true},
		{"10.1.0.0/24[udp/53]", false},
		{"10.1.0.0/24[tcp/opaque]", false},
	} {
		sel, err := ParseSelector(tt.sel)
		if err != nil {
			t.Fatal(err)
		}
		if got := sel.ContainsOpaque(addr, 17); got != tt.want {
			t.Errorf("%s.ContainsOpaque(udp) = %v, want %v", tt.sel, got, tt.want)
		}
	}
}

func TestSelectorFamily(t *testing.T) {
	for _, tt := range []struct {
		sel    string
		family int
	}{{"10.0.0.0/8", 4}, {"10.0.0.1-10.0.0.2", 4}, {"fd00::/8", 6}, {"::ffff:10.0.0.1", 6}} {
		sel, err := ParseSelector(tt.sel)
		if err != nil {
			t.Fatal(err)
		}
		if sel.Family() != tt.family || sel.Is4() != (tt.family == 4) {
			t.Errorf("%s: Family() = %d, Is4() = %v; want %d", tt.sel, sel.Family(), sel.Is4(), tt.family)
		}
	}
}

// FuzzParseSelector checks that any input either fails cleanly or gives a
// selector whose String() parses back to the same selector.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"10.1.0.0/24", "10.1.0.5-10.1.0.9[tcp/80]", "fd00::/64[udp/1024-2048]",
		"1.2.3.4[icmp/opaque]", "::/0[any/%any]", "10.0.0.0/8[0x11/0x35]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			return
		}
		if sel.Start.Is4() != sel.End.Is4() || sel.End.Less(sel.Start) {
			t.Fatalf("ParseSelector(%q) = %+v: inconsistent range", s, sel)
		}
		back, err := ParseSelector(sel.String())
		if err != nil {
			t.Fatalf("ParseSelector(%q).String() = %q does not parse: %v", s, sel.String(), err)
		}
		if back != sel {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v", s, sel, sel.String(), back)
		}
		if !sel.ContainsAddr(sel.Start) || !sel.ContainsAddr(sel.End) {
			t.Fatalf("%q does not contain its own ends", s)
		}
	})
}
