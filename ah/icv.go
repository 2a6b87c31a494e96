package ah

import (
	"encoding/binary"

	"github.com/isle-ipsec/isle/sa"
)

// zeros is a read-only source of zero bytes for the ICV input. The
// mutable fields are fed to the MAC from here instead of from a zeroed
// copy of the header, because a scratch copy handed to the MAC would
// escape to the heap and the hot path must not allocate.
var zeros [64]byte

// ipv6Version is the first byte of an IPv6 header whose traffic class is
// zeroed.
var ipv6Version = [1]byte{0x60}

// writeZeros feeds n zero bytes to the MAC.
func writeZeros(c *sa.Crypto, n int) {
	for n > 0 {
		k := min(n, len(zeros))
		c.MACWrite(zeros[:k])
		n -= k
	}
}

// layout is what locate learns about a received outer packet.
type layout struct {
	version int // outer IP version, 4 or 6
	ahOff   int // offset of the AH header
	ahLen   int // AH header length, ICV and padding included
	end     int // end of the packet by the IP length field
}

// locate validates the outer IP header (and IPv6 extension headers) of a
// received packet and finds its AH header. It accepts only what RFC 4302
// §3.4 processing can verify: whole datagrams (fragments must have been
// reassembled) whose headers are well formed, addressed to their final
// destination.
func locate(pkt []byte, icvLen int) (layout, bool) {
	var l layout
	if len(pkt) < 1 {
		return l, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < ipv4HeaderLen {
			return l, false
		}
		ihl := int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:]))
		if ihl < ipv4HeaderLen || total < ihl || total > len(pkt) {
			return l, false
		}
		// MF set or a fragment offset: a fragment (RFC 4302 §3.4.1).
		if binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 || pkt[9] != protoAH {
			return l, false
		}
		if !ipv4OptionsOK(pkt[ipv4HeaderLen:ihl]) {
			return l, false
		}
		l = layout{version: 4, ahOff: ihl, end: total}
	case 6:
		if len(pkt) < ipv6HeaderLen {
			return l, false
		}
		plen := int(binary.BigEndian.Uint16(pkt[4:]))
		end := ipv6HeaderLen + plen
		if plen == 0 || end > len(pkt) { // 0 would be a jumbogram
			return l, false
		}
		off, ok := ipv6FindAH(pkt[:end])
		if !ok {
			return l, false
		}
		l = layout{version: 6, ahOff: off, end: end}
	default:
		return l, false
	}
	if l.ahOff+FixedLen > l.end {
		return l, false
	}
	// Accept exactly the padded length we would send, as Linux does: a
	// different Payload Length means a different ICV size or padding.
	l.ahLen = headerLenFromField(pkt[l.ahOff+offPayloadLen])
	if l.ahLen != ahLen(icvLen, l.version) || l.ahOff+l.ahLen > l.end {
		return l, false
	}
	return l, true
}

// ipv4Immutable reports whether an IPv4 option type is included in the
// ICV as it is (RFC 4302 Appendix A.1); all other options are zeroed
// entirely, type and length included.
func ipv4Immutable(typ byte) bool {
	switch typ {
	case 0x00, // End of Options List
		0x01, // No Operation
		0x82, // Security
		0x85, // Extended Security
		0x86, // Commercial Security
		0x94, // Router Alert
		0x95: // Sender Directed Multi-Destination Delivery
		return true
	}
	return false
}

// ipv4OptionsOK checks that the options area parses as TLVs.
func ipv4OptionsOK(opts []byte) bool {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0x00: // End of Options List: the rest is padding
			return true
		case 0x01:
			i++
			continue
		}
		if i+1 >= len(opts) {
			return false
		}
		n := int(opts[i+1])
		if n < 2 || i+n > len(opts) {
			return false
		}
		i += n
	}
	return true
}

// ipv6FindAH walks the extension headers in front of AH and returns AH's
// offset. Only hop-by-hop options, destination options and a routing
// header that has reached its end may precede it.
func ipv6FindAH(pkt []byte) (int, bool) {
	nh, off := pkt[6], ipv6HeaderLen
	for {
		switch nh {
		case protoAH:
			return off, true
		case protoHopByHop, protoDestOpts, protoRouting:
		default: // a fragment, ESP, or an upper layer: no AH to verify here
			return 0, false
		}
		if off+8 > len(pkt) {
			return 0, false
		}
		n := (int(pkt[off+1]) + 1) * 8
		if off+n > len(pkt) {
			return 0, false
		}
		if nh == protoRouting {
			// Segments Left != 0: we are not the final destination and
			// the header would still change (RFC 4302 §3.3.3.1.2.2).
			if pkt[off+3] != 0 {
				return 0, false
			}
		} else if !ipv6OptionsOK(pkt[off+2 : off+n]) {
			return 0, false
		}
		nh = pkt[off]
		off += n
	}
}

// ipv6OptionsOK checks that an options header body parses as TLVs.
func ipv6OptionsOK(opts []byte) bool {
	for i := 0; i < len(opts); {
		if opts[i] == 0 { // Pad1
			i++
			continue
		}
		if i+2 > len(opts) || i+2+int(opts[i+1]) > len(opts) {
			return false
		}
		i += 2 + int(opts[i+1])
	}
	return true
}

// macReceivedHeaders feeds the MAC the outer IP header and extension
// headers of a located packet as RFC 4302 §3.3.3.1 has the ICV see them:
// mutable fields zeroed, mutable options zeroed, the rest as received.
func macReceivedHeaders(c *sa.Crypto, pkt []byte, l layout) {
	if l.version == 4 {
		// Zeroed: DSCP+ECN (byte 1), flags and fragment offset (6-7), TTL
		// (8) and header checksum (10-11), RFC 4302 §3.3.3.1.1.1.
		c.MACWrite(pkt[0:1])
		c.MACWrite(zeros[:1])
		c.MACWrite(pkt[2:6])
		c.MACWrite(zeros[:3])
		c.MACWrite(pkt[9:10])
		c.MACWrite(zeros[:2])
		c.MACWrite(pkt[12:ipv4HeaderLen])
		macIPv4Options(c, pkt[ipv4HeaderLen:l.ahOff])
		return
	}
	// Zeroed: traffic class and flow label (bytes 0-3 but the version)
	// and hop limit (7), RFC 4302 §3.3.3.1.2.1.
	c.MACWrite(ipv6Version[:])
	c.MACWrite(zeros[:3])
	c.MACWrite(pkt[4:7])
	c.MACWrite(zeros[:1])
	c.MACWrite(pkt[8:ipv6HeaderLen])
	nh, off := pkt[6], ipv6HeaderLen
	for off < l.ahOff {
		n := (int(pkt[off+1]) + 1) * 8
		if nh == protoRouting {
			// At the final destination the routing header reads as the
			// sender predicted it; it enters the ICV unchanged.
			c.MACWrite(pkt[off : off+n])
		} else {
			c.MACWrite(pkt[off : off+2])
			macIPv6Options(c, pkt[off+2:off+n])
		}
		nh = pkt[off]
		off += n
	}
}

func macIPv4Options(c *sa.Crypto, opts []byte) {
	for i := 0; i < len(opts); {
		typ := opts[i]
		switch typ {
		case 0x00:
			c.MACWrite(opts[i:])
			return
		case 0x01:
			c.MACWrite(opts[i : i+1])
			i++
			continue
		}
		n := int(opts[i+1])
		if ipv4Immutable(typ) {
			c.MACWrite(opts[i : i+n])
		} else {
			writeZeros(c, n)
		}
		i += n
	}
}

// macIPv6Options zeroes the data of every option whose type has the
// "may change en route" bit (RFC 8200 §4.2, RFC 4302 §3.3.3.1.2.2); type
// and length stay in the ICV.
func macIPv6Options(c *sa.Crypto, opts []byte) {
	for i := 0; i < len(opts); {
		if opts[i] == 0 {
			c.MACWrite(opts[i : i+1])
			i++
			continue
		}
		n := int(opts[i+1])
		if opts[i]&0x20 != 0 {
			c.MACWrite(opts[i : i+2])
			writeZeros(c, n)
		} else {
			c.MACWrite(opts[i : i+2+n])
		}
		i += 2 + n
	}
}
