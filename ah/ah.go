package ah

import (
	"encoding/binary"
	"net/netip"

	"github.com/isle-ipsec/isle/sa"
)

// Overhead returns the headroom Seal needs in front of the inner packet:
// the outer IPv4 or IPv6 header (by the family of the SA's remote
// address) plus the AH header with its ICV and padding. AH adds no
// trailer.
func Overhead(s *sa.SA) int {
	v := outerVersion(s)
	return ipHeaderLen(v) + ahLen(s.Integ().ICVSize(), v)
}

func outerVersion(s *sa.SA) int {
	if s.Remote().Addr().Unmap().Is4() {
		return 4
	}
	return 6
}

func ipHeaderLen(version int) int {
	if version == 4 {
		return ipv4HeaderLen
	}
	return ipv6HeaderLen
}

// Seal turns the inner IPv4 or IPv6 packet at buf[off:off+n] into a
// tunnel-mode AH packet (RFC 4302 §3.1.2): it writes the outer IP header
// and the AH header into the Overhead(s) bytes before off and returns the
// whole outer packet, buf[off-Overhead(s):off+n]. The inner packet is not
// changed. seq is the sequence number from s.NextSeq; with ESN its high
// half enters the ICV only (RFC 4302 §2.5.1).
//
// The outer header is built, not copied (RFC 4301 §5.1.2.1): addresses
// from the SA; DSCP and ECN copied from the inner packet (RFC 6040 normal
// mode); TTL / hop limit 64; IPv4 DF copied from an IPv4 inner packet and
// clear for an IPv6 one; IPv4 Identification the low 16 bits of seq, which
// repeats only every 65536 packets as a per-destination counter would, and
// keeps Seal deterministic and free of extra shared state; IPv6 flow
// label 0.
//
// Errors (unwrapped sa sentinels): sa.ErrNoRoom when off is smaller than
// Overhead(s) or the range is outside buf, sa.ErrMalformed when the inner
// packet is not IPv4/IPv6, the outer packet would exceed 65535 bytes or s
// is not a tunnel-mode AH SA, sa.ErrSeqExhausted for seq 0 or a 64-bit
// seq without ESN, sa.ErrExpired after the SA expired.
//
// Like esp.Seal, Seal counts the packet on the SA (s.CountOut, which also
// enforces the byte and packet lifetimes) or the drop (s.CountDrop).
func Seal(s *sa.SA, seq uint64, buf []byte, off, n int) ([]byte, error) {
	pkt, err := seal(s, seq, buf, off, n)
	if err != nil {
		s.CountDrop(sa.ReasonOf(err))
		return nil, err
	}
	s.CountOut(n)
	return pkt, nil
}

func seal(s *sa.SA, seq uint64, buf []byte, off, n int) ([]byte, error) {
	if err := s.Err(); err != nil {
		return nil, err
	}
	if s.Protocol() != sa.ProtoAH || s.Mode() != sa.ModeTunnel {
		return nil, sa.ErrMalformed // transport mode is not implemented
	}
	if seq == 0 || (!s.ESN() && seq>>32 != 0) {
		return nil, sa.ErrSeqExhausted
	}
	v := outerVersion(s)
	icvLen := s.Integ().ICVSize()
	ipLen := ipHeaderLen(v)
	aLen := ahLen(icvLen, v)
	head := ipLen + aLen
	if off < head || n < 0 || off+n > len(buf) || off+n < off {
		return nil, sa.ErrNoRoom
	}
	inner := buf[off : off+n]
	var nextHeader uint8
	var tos uint8
	var df bool
	switch {
	case n >= ipv4HeaderLen && inner[0]>>4 == 4:
		nextHeader = protoIPv4
		tos = inner[1]
		df = inner[6]&0x40 != 0
	case n >= ipv6HeaderLen && inner[0]>>4 == 6:
		nextHeader = protoIPv6
		tos = inner[0]<<4 | inner[1]>>4
	default:
		return nil, sa.ErrMalformed
	}
	pkt := buf[off-head : off+n]
	// IPv4 Total Length counts the header, IPv6 Payload Length does not.
	if (v == 4 && len(pkt) > 0xffff) || (v == 6 && len(pkt)-ipv6HeaderLen > 0xffff) {
		return nil, sa.ErrMalformed
	}
	local, remote := s.Local().Addr().Unmap(), s.Remote().Addr().Unmap()

	// The header is first written with its mutable fields zero, as the
	// ICV sees them, so that the whole packet is one contiguous MAC input;
	// the mutable fields are filled in afterwards.
	ip := pkt[:ipLen]
	if v == 4 {
		ip[0] = 0x45
		ip[1] = 0
		binary.BigEndian.PutUint16(ip[2:], uint16(len(pkt)))
		binary.BigEndian.PutUint16(ip[4:], uint16(seq))
		ip[6], ip[7] = 0, 0
		ip[8] = 0
		ip[9] = protoAH
		ip[10], ip[11] = 0, 0
		a4, b4 := local.As4(), remote.As4()
		copy(ip[12:16], a4[:])
		copy(ip[16:20], b4[:])
	} else {
		ip[0], ip[1], ip[2], ip[3] = 0x60, 0, 0, 0
		binary.BigEndian.PutUint16(ip[4:], uint16(len(pkt)-ipv6HeaderLen))
		ip[6] = protoAH
		ip[7] = 0
		a16, b16 := local.As16(), remote.As16()
		copy(ip[8:24], a16[:])
		copy(ip[24:40], b16[:])
	}
	h := pkt[ipLen:head]
	h[offNextHeader] = nextHeader
	h[offPayloadLen] = payloadLenField(aLen)
	h[offReserved], h[offReserved+1] = 0, 0
	binary.BigEndian.PutUint32(h[offSPI:], s.SPI())
	binary.BigEndian.PutUint32(h[offSeq:], uint32(seq))
	clear(h[offICV:]) // ICV and padding: zero while computing, padding stays zero

	c := s.Crypto()
	c.MACStart()
	c.MACWrite(pkt)
	if s.ESN() {
		c.MACWriteUint32(uint32(seq >> 32))
	}
	copy(h[offICV:offICV+icvLen], c.MACSum())
	c.Release()

	if v == 4 {
		ip[1] = tos
		if df {
			ip[6] = 0x40
		}
		ip[8] = defaultTTL
		binary.BigEndian.PutUint16(ip[10:], ipv4Checksum(ip))
	} else {
		ip[0] = 0x60 | tos>>4
		ip[1] = tos << 4
		ip[7] = defaultTTL
	}
	return pkt, nil
}

// Open verifies a whole tunnel-mode AH packet (outer IPv4 or IPv6 header
// first) received on s, and returns the inner packet, a subslice of pkt,
// with AH's Next Header (4 for IPv4, 41 for IPv6). pkt is not modified.
//
// Processing follows RFC 4302 §3.4: fragments are refused (reassemble
// first); the AH header length must match the SA's ICV; the SPI must be
// s's; the anti-replay pre-check runs before the ICV and the window is
// updated only after the ICV verified. The ICV covers the outer header
// with its mutable fields zeroed (§3.3.3.1), the AH header with a zero
// ICV and its padding, the inner packet and, with ESN, the inferred high
// half of the sequence number.
//
// Errors (unwrapped sa sentinels): sa.ErrMalformed, sa.ErrUnknownSPI
// (also for an SA that is not AH), sa.ErrReplayed, sa.ErrAuthFailed,
// sa.ErrExpired. Like esp.Open, Open counts the packet on the SA
// (s.CountIn, which enforces the lifetimes) or the drop (s.CountDrop).
func Open(s *sa.SA, pkt []byte) (inner []byte, nextHeader uint8, err error) {
	inner, nextHeader, err = open(s, pkt)
	if err != nil {
		s.CountDrop(sa.ReasonOf(err))
		return nil, 0, err
	}
	s.CountIn(len(inner))
	return inner, nextHeader, nil
}

func open(s *sa.SA, pkt []byte) (inner []byte, nextHeader uint8, err error) {
	if err := s.Err(); err != nil {
		return nil, 0, err
	}
	if s.Protocol() != sa.ProtoAH {
		return nil, 0, sa.ErrUnknownSPI
	}
	if s.Mode() != sa.ModeTunnel {
		return nil, 0, sa.ErrMalformed // transport mode is not implemented
	}
	icvLen := s.Integ().ICVSize()
	l, ok := locate(pkt, icvLen)
	if !ok {
		return nil, 0, sa.ErrMalformed
	}
	h := pkt[l.ahOff : l.ahOff+l.ahLen]
	if binary.BigEndian.Uint32(h[offSPI:]) != s.SPI() {
		return nil, 0, sa.ErrUnknownSPI
	}
	seq, err := s.CheckReplay(binary.BigEndian.Uint32(h[offSeq:]))
	if err != nil {
		return nil, 0, err
	}

	c := s.Crypto()
	c.MACStart()
	macReceivedHeaders(c, pkt, l)
	c.MACWrite(h[:offICV])
	writeZeros(c, icvLen)
	c.MACWrite(h[offICV+icvLen:]) // padding, as received
	c.MACWrite(pkt[l.ahOff+l.ahLen : l.end])
	if s.ESN() {
		c.MACWriteUint32(uint32(seq >> 32))
	}
	good := c.MACVerify(h[offICV : offICV+icvLen])
	c.Release()
	if !good {
		return nil, 0, sa.ErrAuthFailed
	}
	if err := s.CommitReplay(seq); err != nil {
		return nil, 0, err
	}

	// Authentic from here on; what remains is whether it is a packet we
	// can forward.
	nextHeader = h[offNextHeader]
	inner = pkt[l.ahOff+l.ahLen : l.end]
	switch {
	case nextHeader == protoIPv4 && len(inner) >= ipv4HeaderLen && inner[0]>>4 == 4:
	case nextHeader == protoIPv6 && len(inner) >= ipv6HeaderLen && inner[0]>>4 == 6:
	default:
		return nil, nextHeader, sa.ErrMalformed
	}
	return inner, nextHeader, nil
}

// RebuildIPv6Header writes an IPv6 header for the AH packet at
// buf[off:off+n] into the 40 bytes before off and returns the whole packet
// for Open. A raw IPv6 socket hands over the AH header without the IPv6
// header in front of it; of that header the ICV only covers the addresses,
// the payload length and the next header (traffic class, flow label and
// hop limit are zeroed for it, RFC 4302 §3.3.3.1.2.1), so src (the
// sender, from recvfrom) and dst (our address, from IPV6_PKTINFO) are all
// that is needed. Packets that carried extension headers in front of AH
// cannot be rebuilt this way; they fail verification.
func RebuildIPv6Header(buf []byte, off, n int, src, dst netip.Addr) ([]byte, error) {
	if off < ipv6HeaderLen || n < 0 || off+n > len(buf) || off+n < off {
		return nil, sa.ErrNoRoom
	}
	if n > 0xffff || !src.Is6() || !dst.Is6() || src.Is4In6() || dst.Is4In6() {
		return nil, sa.ErrMalformed
	}
	pkt := buf[off-ipv6HeaderLen : off+n]
	pkt[0], pkt[1], pkt[2], pkt[3] = 0x60, 0, 0, 0
	binary.BigEndian.PutUint16(pkt[4:], uint16(n))
	pkt[6] = protoAH
	pkt[7] = 0
	s16, d16 := src.As16(), dst.As16()
	copy(pkt[8:24], s16[:])
	copy(pkt[24:40], d16[:])
	return pkt, nil
}
