package dataplane

import (
	"encoding/binary"
	"math/bits"
)

// clampMSS lowers the MSS option of a TCP SYN in pkt (IPv4 or IPv6 without
// extension headers before TCP) to at most mss, fixing the TCP checksum
// incrementally (RFC 1624). It reports whether it changed the packet.
// Clamping both directions' SYNs keeps TCP segments small enough for the
// tunnel even when ICMP "too big" messages are filtered on the way.
func clampMSS(pkt []byte, mss uint16) bool {
	var l4 []byte
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 || pkt[9] != 6 || binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0 {
			return false
		}
		ihl := int(pkt[0]&0x0f) * 4
		end := min(int(binary.BigEndian.Uint16(pkt[2:4])), len(pkt))
		if ihl < 20 || end < ihl {
			return false
		}
		l4 = pkt[ihl:end]
	case 6:
		if len(pkt) < 40 || pkt[6] != 6 {
			return false
		}
		l4 = pkt[40:min(40+int(binary.BigEndian.Uint16(pkt[4:6])), len(pkt))]
	default:
		return false
	}
	if len(l4) < 20 || l4[13]&0x02 == 0 { // SYN
		return false
	}
	doff := int(l4[12]>>4) * 4
	if doff < 20 || doff > len(l4) {
		return false
	}
	opts := l4[20:doff]
	for i := 0; i < len(opts); {
		switch kind := opts[i]; kind {
		case 0: // end of options
			return false
		case 1: // no-op
			i++
			continue
		}
		if i+1 >= len(opts) {
			return false
		}
		olen := int(opts[i+1])
		if olen < 2 || i+olen > len(opts) {
			return false
		}
		if opts[i] == 2 && olen == 4 {
			old := binary.BigEndian.Uint16(opts[i+2:])
			if old <= mss {
				return false
			}
			binary.BigEndian.PutUint16(opts[i+2:], mss)
			// The checksum sums 16-bit words from the start of the TCP
			// header; a field at an odd offset (after a lone NOP) adds
			// its bytes swapped.
			oldW, newW := old, mss
			if (20+i+2)%2 == 1 {
				oldW, newW = bits.ReverseBytes16(old), bits.ReverseBytes16(mss)
			}
			sum := binary.BigEndian.Uint16(l4[16:18])
			binary.BigEndian.PutUint16(l4[16:18], updateChecksum(sum, oldW, newW))
			return true
		}
		i += olen
	}
	return false
}

// updateChecksum adjusts checksum sum for a 16-bit field changing from old
// to new: HC' = ~(~HC + ~m + m') (RFC 1624 eqn. 3).
func updateChecksum(sum, old, new uint16) uint16 {
	s := uint32(^sum) + uint32(^old) + uint32(new)
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
