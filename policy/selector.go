package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Selector is one traffic selector (RFC 7296 §3.13.1, RFC 4301 §4.4.1): an
// inclusive address range of one family, an IP protocol and an inclusive
// port range. It is the unit both the SPD and the IKE TS payloads work in.
//
// Proto 0 means any protocol. Ports 0-65535 mean any port; for ICMP and
// ICMPv6 the 16-bit "port" is type<<8|code, as RFC 7296 §3.13.1 defines
// and as Tuple carries it. PortStart > PortEnd (65535-0) is the RFC 4301
// OPAQUE selector: it matches only packets whose ports cannot be read.
type Selector struct {
	Start, End         netip.Addr
	Proto              uint8
	PortStart, PortEnd uint16
}

// ParseSelector reads a traffic selector in strongSwan's swanctl.conf
// syntax (local_ts/remote_ts):
//
//	10.1.0.0/24            a CIDR prefix (IPv6 too: fd00:1::/64)
//	10.1.0.5-10.1.0.9      an inclusive address range
//	10.1.0.7               a single address (a /32 or /128)
//	10.1.0.0/24[tcp]       any of the above with a protocol ...
//	10.1.0.0/24[tcp/443]   ... and a port: number, service name, range
//	10.1.0.0/24[udp/1024-2048], [any/53], [tcp/any], [udp/opaque]
//
// Protocol names are tcp, udp, icmp, icmp6 (ipv6-icmp), sctp, or a number
// 0-255; "any" and "%any" mean every protocol or port. The address must
// be given: strongSwan's "dynamic" (the outer address) is not supported.
func ParseSelector(s string) (Selector, error) {
	sel, err := parseSelector(strings.TrimSpace(s))
	if err != nil {
		return Selector{}, fmt.Errorf("traffic selector %q: %w", s, err)
	}
	return sel, nil
}

func parseSelector(s string) (Selector, error) {
	sel := Selector{PortEnd: 0xffff}
	addr := s
	if i := strings.IndexByte(s, '['); i >= 0 {
		if !strings.HasSuffix(s, "]") {
			return Selector{}, errors.New(`"[" without a closing "]" at the end`)
		}
		addr = strings.TrimSpace(s[:i])
		if err := sel.parseProtoPort(s[i+1 : len(s)-1]); err != nil {
			return Selector{}, err
		}
	}
	switch {
	case addr == "":
		return Selector{}, errors.New("no address: expected a CIDR prefix, an address range or an address")
	case addr == "dynamic":
		return Selector{}, errors.New(`"dynamic" is not supported: give the subnet, e.g. 10.1.0.0/24`)
	case strings.Contains(addr, "/"):
		p, err := netip.ParsePrefix(addr)
		if err != nil {
			return Selector{}, fmt.Errorf("bad CIDR prefix %q: expected e.g. 10.1.0.0/24 or fd00::/64", addr)
		}
		if p.Addr().Zone() != "" {
			return Selector{}, fmt.Errorf("bad CIDR prefix %q: zones are not allowed", addr)
		}
		p = p.Masked()
		sel.Start, sel.End = p.Addr(), prefixEnd(p)
	case strings.Contains(addr, "-"):
		lo, hi, _ := strings.Cut(addr, "-")
		start, err1 := parsePlainAddr(strings.TrimSpace(lo))
		end, err2 := parsePlainAddr(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil {
			return Selector{}, fmt.Errorf("bad address range %q: expected FIRST-LAST, e.g. 10.1.0.5-10.1.0.9", addr)
		}
		if start.Is4() != end.Is4() {
			return Selector{}, fmt.Errorf("address range %q mixes IPv4 and IPv6", addr)
		}
		if end.Less(start) {
			return Selector{}, fmt.Errorf("address range %q ends before it starts", addr)
		}
		sel.Start, sel.End = start, end
	default:
		a, err := parsePlainAddr(addr)
		if err != nil {
			return Selector{}, fmt.Errorf("bad address %q: expected a CIDR prefix (10.1.0.0/24), a range (10.1.0.5-10.1.0.9) or an address", addr)
		}
		sel.Start, sel.End = a, a
	}
	return sel, nil
}

// parsePlainAddr accepts an IPv4 or IPv6 address without zone; an
// IPv4-mapped IPv6 address is kept as IPv6, as it is written.
func parsePlainAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if a.Zone() != "" {
		return netip.Addr{}, errors.New("zone not allowed")
	}
	return a, nil
}

func (sel *Selector) parseProtoPort(pp string) error {
	proto, port, hasPort := strings.Cut(pp, "/")
	proto = strings.TrimSpace(proto)
	switch {
	case proto == "" && hasPort:
		return errors.New(`empty protocol before "/": use e.g. [tcp/80] or [any/80]`)
	case proto == "" || isAny(proto):
		sel.Proto = 0
	default:
		p, ok := protoByName[strings.ToLower(proto)]
		if !ok {
			n, err := strconv.ParseUint(proto, 0, 8)
			if err != nil {
				return fmt.Errorf("unknown protocol %q: expected tcp, udp, icmp, icmp6, sctp, any or a number 0-255", proto)
			}
			p = uint8(n)
		}
		sel.Proto = p
	}
	if !hasPort {
		return nil
	}
	port = strings.TrimSpace(port)
	switch {
	case port == "" || isAny(port):
		sel.PortStart, sel.PortEnd = 0, 0xffff
		return nil
	case port == "opaque":
		sel.PortStart, sel.PortEnd = 0xffff, 0
		return nil
	}
	if sel.Proto != 0 && !hasPorts(sel.Proto) {
		return fmt.Errorf("protocol %d has no ports: remove %q", sel.Proto, "/"+port)
	}
	if n, ok := serviceByName[strings.ToLower(port)]; ok {
		sel.PortStart, sel.PortEnd = n, n
		return nil
	}
	lo, hi, isRange := strings.Cut(port, "-")
	start, err := strconv.ParseUint(strings.TrimSpace(lo), 0, 16)
	if err != nil {
		return fmt.Errorf("bad port %q: expected a number 0-65535, a range 1024-2048, a service name (http, https, domain, ...), any or opaque", port)
	}
	end := start
	if isRange {
		end, err = strconv.ParseUint(strings.TrimSpace(hi), 0, 16)
		if err != nil {
			return fmt.Errorf("bad port range %q: expected FIRST-LAST with numbers 0-65535", port)
		}
		if end < start {
			return fmt.Errorf("port range %q ends before it starts", port)
		}
	}
	sel.PortStart, sel.PortEnd = uint16(start), uint16(end)
	return nil
}

func isAny(s string) bool { return s == "any" || s == "%any" }

// hasPorts reports whether a port restriction means something for proto:
// the transport protocols with ports, and ICMP whose type/code RFC 7296
// carries in the port fields.
func hasPorts(proto uint8) bool {
	switch proto {
	case ProtoTCP, ProtoUDP, ProtoSCTP, 136, ProtoICMP, ProtoICMPv6:
		return true
	}
	return false
}

var protoByName = map[string]uint8{
	"icmp":      ProtoICMP,
	"tcp":       ProtoTCP,
	"udp":       ProtoUDP,
	"gre":       47,
	"esp":       protoESP,
	"ah":        protoAH,
	"icmp6":     ProtoICMPv6,
	"icmpv6":    ProtoICMPv6,
	"ipv6-icmp": ProtoICMPv6,
	"sctp":      ProtoSCTP,
	"udplite":   136,
}

// protoNames is the inverse of protoByName for String, with the names
// strongSwan prints.
var protoNames = map[uint8]string{
	ProtoICMP:   "icmp",
	ProtoTCP:    "tcp",
	ProtoUDP:    "udp",
	47:          "gre",
	protoESP:    "esp",
	protoAH:     "ah",
	ProtoICMPv6: "ipv6-icmp",
	ProtoSCTP:   "sctp",
	136:         "udplite",
}

// serviceByName is a small, fixed table instead of getservbyname(3), so a
// configuration means the same on every machine.
var serviceByName = map[string]uint16{
	"ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25,
	"domain": 53, "dns": 53, "bootps": 67, "bootpc": 68, "tftp": 69,
	"http": 80, "www": 80, "kerberos": 88, "pop3": 110, "ntp": 123,
	"imap": 143, "snmp": 161, "snmp-trap": 162, "bgp": 179, "ldap": 389,
	"https": 443, "isakmp": 500, "submission": 587, "syslog": 514,
	"ldaps": 636, "imaps": 993, "pop3s": 995, "openvpn": 1194,
	"ipsec-nat-t": 4500, "radius": 1812, "radius-acct": 1813,
	"mysql": 3306, "postgresql": 5432, "rdp": 3389, "sip": 5060,
}

// prefixEnd returns the highest address of a masked prefix.
func prefixEnd(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		switch {
		case bits >= 8:
			bits -= 8
		case bits > 0:
			b[i] |= 0xff >> bits
			bits = 0
		default:
			b[i] = 0xff
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Prefix returns the CIDR prefix the address range is exactly equal to,
// if there is one.
func (s Selector) Prefix() (netip.Prefix, bool) {
	if !s.Start.IsValid() || !s.End.IsValid() || s.Start.Is4() != s.End.Is4() {
		return netip.Prefix{}, false
	}
	// Walk from the longest prefix down: the first one whose first and
	// last addresses are the two ends is the answer; none means the range
	// is not aligned.
	for bits := s.Start.BitLen(); bits >= 0; bits-- {
		p := netip.PrefixFrom(s.Start, bits).Masked()
		if p.Addr() != s.Start {
			return netip.Prefix{}, false
		}
		if last := prefixEnd(p); last == s.End {
			return p, true
		} else if s.End.Less(last) {
			return netip.Prefix{}, false
		}
	}
	return netip.Prefix{}, false
}

// String prints the selector back in ParseSelector's syntax, canonically:
// a CIDR prefix when the range is exactly one, "FIRST-LAST" otherwise, and
// a "[proto/port]" suffix only when it restricts something. Parsing the
// result gives the same Selector.
func (s Selector) String() string {
	var b strings.Builder
	if p, ok := s.Prefix(); ok {
		b.WriteString(p.String())
	} else {
		b.WriteString(s.Start.String())
		b.WriteByte('-')
		b.WriteString(s.End.String())
	}
	anyPort := s.PortStart == 0 && s.PortEnd == 0xffff
	if s.Proto == 0 && anyPort {
		return b.String()
	}
	b.WriteByte('[')
	if name, ok := protoNames[s.Proto]; ok {
		b.WriteString(name)
	} else if s.Proto == 0 {
		b.WriteString("any")
	} else {
		b.WriteString(strconv.Itoa(int(s.Proto)))
	}
	switch {
	case anyPort:
	case s.PortStart > s.PortEnd:
		b.WriteString("/opaque")
	case s.PortStart == s.PortEnd:
		fmt.Fprintf(&b, "/%d", s.PortStart)
	default:
		fmt.Fprintf(&b, "/%d-%d", s.PortStart, s.PortEnd)
	}
	b.WriteByte(']')
	return b.String()
}

// Is4 reports whether the selector covers IPv4 addresses (false: IPv6).
func (s Selector) Is4() bool { return s.Start.Is4() }

// Family returns 4 for an IPv4 selector and 6 for an IPv6 one, as in
// "IPv4"/"IPv6" messages and TS types (TS_IPV4_ADDR_RANGE = 7,
// TS_IPV6_ADDR_RANGE = 8 in RFC 7296 are the ike package's business).
func (s Selector) Family() int {
	if s.Start.Is4() {
		return 4
	}
	return 6
}

// AnyPort reports whether the selector accepts every port (and so every
// packet whose ports cannot be read, too).
func (s Selector) AnyPort() bool { return s.PortStart == 0 && s.PortEnd == 0xffff }

// Opaque reports whether this is the RFC 4301 OPAQUE port selector.
func (s Selector) Opaque() bool { return s.PortStart > s.PortEnd }

// ContainsAddr reports whether addr lies in the address range.
func (s Selector) ContainsAddr(addr netip.Addr) bool {
	if addr.Is4In6() && s.Start.Is4() {
		addr = addr.Unmap()
	}
	return addr.Is4() == s.Start.Is4() && s.Start.Compare(addr) <= 0 && addr.Compare(s.End) <= 0
}

// Contains reports whether a packet to or from addr with protocol proto
// and (source or destination, whichever side this selector describes)
// port matches the selector. For protocols without ports pass port 0:
// only selectors that accept any port match it.
func (s Selector) Contains(addr netip.Addr, proto uint8, port uint16) bool {
	if !s.ContainsAddr(addr) {
		return false
	}
	if s.Proto != 0 && s.Proto != proto {
		return false
	}
	if s.AnyPort() {
		return true
	}
	if s.Opaque() || !hasPorts(proto) {
		return false
	}
	return s.PortStart <= port && port <= s.PortEnd
}

// ContainsOpaque reports whether a packet whose ports could not be read
// (Tuple.Opaque) matches: the address and protocol fit and the selector
// accepts any port or is the OPAQUE selector (RFC 4301 §4.4.1.1).
func (s Selector) ContainsOpaque(addr netip.Addr, proto uint8) bool {
	return s.ContainsAddr(addr) && (s.Proto == 0 || s.Proto == proto) && (s.AnyPort() || s.Opaque())
}
