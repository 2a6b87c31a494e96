package dataplane

import (
	"encoding/binary"
)

// IPv6 requires every link to carry 1280 bytes (RFC 8200 §5); a Packet Too
// Big below that is not sent, the outer packet is fragmented instead.
const ipv6MinMTU = 1280

// checksum returns the Internet checksum (RFC 1071) of b folded with the
// partial sum initial.
func checksum(b []byte, initial uint32) uint16 {
	sum := initial
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// pseudoSum6 is the partial checksum of the IPv6 pseudo-header (RFC 8200 §8.1).
func pseudoSum6(src, dst []byte, length int, next uint8) uint32 {
	var sum uint32
	for i := 0; i < 16; i += 2 {
		sum += uint32(src[i])<<8 | uint32(src[i+1])
		sum += uint32(dst[i])<<8 | uint32(dst[i+1])
	}
	sum += uint32(length>>16) + uint32(length&0xffff)
	sum += uint32(next)
	return sum
}

// isICMPError reports whether pkt is an ICMP or ICMPv6 error message, about
// which no ICMP error may be sent (RFC 1122 §3.2.2, RFC 4443 §2.4 (e)).
func isICMPError(pkt []byte) bool {
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0x0f) * 4
		if pkt[9] != 1 || len(pkt) <= ihl || binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0 {
			return false
		}
		switch pkt[ihl] {
		case 3, 4, 5, 11, 12:
			return true
		}
	case 6:
		return len(pkt) > 40 && pkt[6] == 58 && pkt[40] < 128
	}
	return false
}

// wantsTooBig reports whether an inner packet that does not fit the tunnel
// must be answered with an ICMP "too big" instead of being sent: IPv4 with
// DF set, and IPv6 (which routers never fragment) as long as the MTU to
// report is one IPv6 allows.
func wantsTooBig(pkt []byte, mtu int) bool {
	switch pkt[0] >> 4 {
	case 4:
		return len(pkt) >= 20 && pkt[6]&0x40 != 0 && !isICMPError(pkt)
	case 6:
		return len(pkt) >= 40 && mtu >= ipv6MinMTU && !isICMPError(pkt)
	}
	return false
}

// tooBig writes into out the ICMP "fragmentation needed" (IPv4, RFC 792 /
// RFC 1191) or ICMPv6 "packet too big" (RFC 4443 §3.2) answer to pkt,
// reporting mtu, and returns its length. The answer appears to come from
// pkt's destination: the kernel drops packets arriving on the TUN device
// from one of its own addresses, and the destination lies behind the
// tunnel, where the bottleneck is. out must hold at least 1280 bytes.
func tooBig(out, pkt []byte, mtu int) int {
	if pkt[0]>>4 == 4 {
		// RFC 1812 §4.3.2.3: as much of the original as fits in 576 bytes.
		quote := min(len(pkt), 576-28)
		n := 28 + quote
		h := out[:n]
		clear(h[:28])
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(n))
		h[8] = 64
		h[9] = 1
		copy(h[12:16], pkt[16:20])
		copy(h[16:20], pkt[12:16])
		binary.BigEndian.PutUint16(h[10:], checksum(h[:20], 0))
		h[20], h[21] = 3, 4 // destination unreachable, fragmentation needed
		binary.BigEndian.PutUint16(h[26:], uint16(mtu))
		copy(h[28:], pkt[:quote])
		binary.BigEndian.PutUint16(h[22:], checksum(h[20:], 0))
		return n
	}
	// RFC 4443 §2.4 (c): as much as fits in the minimum IPv6 MTU.
	quote := min(len(pkt), ipv6MinMTU-48)
	n := 48 + quote
	h := out[:n]
	clear(h[:48])
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(n-40))
	h[6], h[7] = 58, 64
	copy(h[8:24], pkt[24:40])
	copy(h[24:40], pkt[8:24])
	h[40] = 2 // packet too big
	binary.BigEndian.PutUint32(h[44:], uint32(mtu))
	copy(h[48:], pkt[:quote])
	binary.BigEndian.PutUint16(h[42:], checksum(h[40:], pseudoSum6(h[8:24], h[24:40], n-40, 58)))
	return n
}
