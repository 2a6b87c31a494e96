package policy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// IP protocol numbers the SPD and the header parser care about.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
	ProtoSCTP   uint8 = 132

	protoHopByHop uint8 = 0
	protoRouting  uint8 = 43
	protoFragment uint8 = 44
	protoESP      uint8 = 50
	protoAH       uint8 = 51
	protoNoNext   uint8 = 59
	protoDestOpts uint8 = 60
)

// Tuple is the part of an IP packet an SPD lookup keys on: addresses, the
// upper-layer protocol and, when the protocol has them and the packet
// carries them, the ports. For ICMP and ICMPv6 both ports hold type<<8|code,
// the 16-bit "port" RFC 7296 §3.13.1 defines for ICMP traffic selectors, so
// a port range on either side of a selector restricts the ICMP type.
type Tuple struct {
	Src, Dst netip.Addr
	Proto    uint8
	SrcPort  uint16
	DstPort  uint16
	// Opaque is set when the packet has no ports to read (a non-first
	// fragment, a protocol without ports such as GRE or ESP, a truncated
	// header): such a packet matches only selectors that accept any port or
	// the OPAQUE selector (RFC 4301 §4.4.1.1).
	Opaque bool
}

func (t Tuple) String() string {
	if t.Opaque {
		return fmt.Sprintf("%v > %v proto %d (opaque)", t.Src, t.Dst, t.Proto)
	}
	return fmt.Sprintf("%v:%d > %v:%d proto %d", t.Src, t.SrcPort, t.Dst, t.DstPort, t.Proto)
}

// Errors of ParseTuple. They are values so the dataplane can count drops
// by reason without formatting anything.
var (
	ErrShortPacket = errors.New("packet shorter than its IP header")
	ErrBadVersion  = errors.New("not an IPv4 or IPv6 packet")
	ErrBadHeader   = errors.New("malformed IP header")
)

// maxExtHeaders bounds the IPv6 extension header walk, so a packet made of
// nothing but extension headers costs a fixed amount of work.
const maxExtHeaders = 8

// ParseTuple extracts the 5-tuple of an IPv4 or IPv6 packet without
// allocating. It checks only what it needs to read safely: a malformed
// packet yields an error, never a panic.
func ParseTuple(pkt []byte) (Tuple, error) {
	if len(pkt) < 1 {
		return Tuple{}, ErrShortPacket
	}
	switch pkt[0] >> 4 {
	case 4:
		return parse4(pkt)
	case 6:
		return parse6(pkt)
	}
	return Tuple{}, ErrBadVersion
}

func parse4(pkt []byte) (Tuple, error) {
	if len(pkt) < 20 {
		return Tuple{}, ErrShortPacket
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < 20 || len(pkt) < ihl {
		return Tuple{}, ErrBadHeader
	}
	t := Tuple{
		Src:   netip.AddrFrom4([4]byte(pkt[12:16])),
		Dst:   netip.AddrFrom4([4]byte(pkt[16:20])),
		Proto: pkt[9],
	}
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if total < ihl {
		return Tuple{}, ErrBadHeader
	}
	end := min(total, len(pkt))
	fragOff := binary.BigEndian.Uint16(pkt[6:8]) & 0x1fff
	if fragOff != 0 {
		t.Opaque = true
		return t, nil
	}
	readPorts(&t, pkt[ihl:end])
	return t, nil
}

func parse6(pkt []byte) (Tuple, error) {
	if len(pkt) < 40 {
		return Tuple{}, ErrShortPacket
	}
	t := Tuple{
		Src: netip.AddrFrom16([16]byte(pkt[8:24])),
		Dst: netip.AddrFrom16([16]byte(pkt[24:40])),
	}
	end := min(40+int(binary.BigEndian.Uint16(pkt[4:6])), len(pkt))
	next, off := pkt[6], 40
	for range maxExtHeaders {
		switch next {
		case protoHopByHop, protoRouting, protoDestOpts:
			if end-off < 8 {
				return Tuple{}, ErrBadHeader
			}
			next, off = pkt[off], off+(int(pkt[off+1])+1)*8
			if off > end {
				return Tuple{}, ErrBadHeader
			}
			continue
		case protoFragment:
			if end-off < 8 {
				return Tuple{}, ErrBadHeader
			}
			fragOff := binary.BigEndian.Uint16(pkt[off+2:off+4]) >> 3
			next, off = pkt[off], off+8
			if fragOff != 0 {
				t.Proto, t.Opaque = next, true
				return t, nil
			}
			continue
		}
		t.Proto = next
		readPorts(&t, pkt[off:end])
		return t, nil
	}
	return Tuple{}, ErrBadHeader
}

// readPorts fills the ports from the upper-layer header l4; a header too
// short to hold them makes the tuple opaque rather than failing, because
// the addresses alone may still select a policy.
func readPorts(t *Tuple, l4 []byte) {
	switch t.Proto {
	case ProtoTCP, ProtoUDP, ProtoSCTP, 136 /* UDP-Lite */ :
		if len(l4) < 4 {
			t.Opaque = true
			return
		}
		t.SrcPort = binary.BigEndian.Uint16(l4[0:2])
		t.DstPort = binary.BigEndian.Uint16(l4[2:4])
	case ProtoICMP, ProtoICMPv6:
		if len(l4) < 2 {
			t.Opaque = true
			return
		}
		t.SrcPort = uint16(l4[0])<<8 | uint16(l4[1])
		t.DstPort = t.SrcPort
	default:
		// Protocols without ports (ESP, AH, GRE, …) are opaque: only
		// selectors that accept any port (or OPAQUE) match them.
		t.Opaque = true
	}
}
