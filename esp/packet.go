package esp

import "encoding/binary"

// Field offsets of the ESP header (RFC 4303 §2).
const (
	SPIOffset     = 0
	SeqOffset     = 4
	PayloadOffset = 8 // IV (if any), then the encrypted payload
	HeaderLen     = 8 // SPI and sequence number
)

// Next Header values Seal and Open deal with.
const (
	NextHeaderIPv4  uint8 = 4  // IP-in-IP: tunnel mode, inner IPv4
	NextHeaderIPv6  uint8 = 41 // tunnel mode, inner IPv6
	NextHeaderDummy uint8 = 59 // "no next header": a TFC dummy packet (RFC 4303 §2.6)
)

// Packet is an ESP packet from the SPI on, as found in an IP payload or
// a UDP payload on port 4500. The accessors do not check the length:
// callers check len(p) >= HeaderLen first (SPI does).
type Packet []byte

// SPI returns the Security Parameters Index.
func (p Packet) SPI() uint32 { return binary.BigEndian.Uint32(p[SPIOffset:]) }

// Seq returns the sequence number field (the low 32 bits with ESN).
func (p Packet) Seq() uint32 { return binary.BigEndian.Uint32(p[SeqOffset:]) }

// Payload returns what follows the header: IV, ciphertext and ICV.
func (p Packet) Payload() []byte { return p[PayloadOffset:] }

// SPI returns the SPI of pkt, or ok=false if pkt is too short to be ESP.
func SPI(pkt []byte) (spi uint32, ok bool) {
	if len(pkt) < HeaderLen {
		return 0, false
	}
	return Packet(pkt).SPI(), true
}

// Kind is what a UDP payload on the NAT-T port carries (RFC 3948 §2).
type Kind uint8

const (
	KindInvalid   Kind = iota // too short to be anything
	KindESP                   // an ESP packet (the whole payload)
	KindIKE                   // an IKE message after the 4-byte non-ESP marker
	KindKeepalive             // a NAT-keepalive (RFC 3948 §2.3): drop it
)

func (k Kind) String() string {
	switch k {
	case KindESP:
		return "ESP"
	case KindIKE:
		return "IKE"
	case KindKeepalive:
		return "keepalive"
	}
	return "invalid"
}

// NonESPMarkerLen is the length of the zero SPI that prefixes IKE
// messages on port 4500 (RFC 3948 §2.2).
const NonESPMarkerLen = 4

// ClassifyUDP tells ESP, IKE and NAT-keepalives apart on port 4500. An
// SPI is never zero on the wire, so four zero bytes mark IKE (its message
// is payload[NonESPMarkerLen:]); a lone 0xFF byte is a keepalive.
func ClassifyUDP(payload []byte) Kind {
	switch {
	case len(payload) == 1 && payload[0] == 0xFF:
		return KindKeepalive
	case len(payload) > NonESPMarkerLen && binary.BigEndian.Uint32(payload) == 0:
		return KindIKE
	case len(payload) >= HeaderLen && binary.BigEndian.Uint32(payload) != 0:
		return KindESP
	}
	return KindInvalid
}
