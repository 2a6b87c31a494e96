package ah

import "encoding/binary"

// Wire layout of the AH header (RFC 4302 §2):
//
//	0        8       16               31
//	| Next   | Payld | Reserved       |
//	| Header | Len   |                |
//	|  Security Parameters Index      |
//	|  Sequence Number (low 32 bits)  |
//	|  ICV (and padding) ...          |
const (
	offNextHeader = 0
	offPayloadLen = 1
	offReserved   = 2
	offSPI        = 4
	offSeq        = 8
	offICV        = 12

	// FixedLen is the size of the AH header without its ICV.
	FixedLen = offICV
)

// IP protocol numbers ah reads and writes.
const (
	protoHopByHop = 0
	protoIPv4     = 4
	protoIPv6     = 41
	protoRouting  = 43
	protoFragment = 44
	protoESP      = 50
	protoAH       = 51
	protoDestOpts = 60
)

const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40

	// defaultTTL is the outer TTL / hop limit. RFC 4301 §5.1.2.1 has the
	// tunnel build a fresh outer TTL rather than copy the inner one; 64 is
	// what Linux and strongSwan's kernel path use.
	defaultTTL = 64
)

// ahLen is the AH header length, ICV and padding included, that carries an
// icvLen-byte ICV over the given outer IP version: RFC 4302 §2.6 pads the
// header to a multiple of 32 bits for IPv4 and 64 bits for IPv6. With a
// 12-byte fixed part, HMAC-SHA1-96 fits both unpadded; the SHA-2 ICVs need
// 4 bytes of padding over IPv6.
func ahLen(icvLen int, ipVersion int) int {
	n := FixedLen + icvLen
	align := 4
	if ipVersion == 6 {
		align = 8
	}
	return (n + align - 1) &^ (align - 1)
}

// payloadLenField is the Payload Length field for an AH header of n
// bytes: its length in 32-bit words minus 2 (RFC 4302 §2.2), for IPv6 too.
func payloadLenField(n int) uint8 { return uint8(n/4 - 2) }

// headerLenFromField inverts payloadLenField.
func headerLenFromField(v uint8) int { return (int(v) + 2) * 4 }

// ipv4Checksum is the Internet checksum (RFC 1071) of an IPv4 header whose
// checksum field is zero.
func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
