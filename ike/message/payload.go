package message

import (
	"fmt"
	"net/netip"

	"golang.org/x/crypto/cryptobyte"

	"github.com/isle-ipsec/isle/sa"
)

// Payload is one IKEv2 payload. Its generic header (next payload, critical
// bit, length; RFC 7296 §3.2) is written and read by the message codec, so
// each payload type only handles its body.
type Payload interface {
	// Type is the payload type that announces this payload on the wire.
	Type() PayloadType
	marshalBody(b *cryptobyte.Builder)
}

// SA is the Security Association payload (RFC 7296 §3.3).
type SA struct {
	Proposals []Proposal
}

// Proposal is one proposal substructure (RFC 7296 §3.3.1).
type Proposal struct {
	Number     uint8
	Protocol   ProtocolID
	SPI        []byte // empty in IKE_SA_INIT, 8 bytes when rekeying an IKE SA, 4 for ESP/AH
	Transforms []Transform
}

// Transform is one transform substructure (RFC 7296 §3.3.2). ID is an
// sa.EncAlg, sa.PRFAlg, sa.IntegAlg, sa.DHGroup or ESN value depending on
// Type.
type Transform struct {
	Type       sa.TransformType
	ID         uint16
	Attributes []Attribute
}

// Attribute is a transform attribute (RFC 7296 §3.3.5). TV attributes
// (the AF bit set) carry a 2-byte Value; TLV attributes any length.
type Attribute struct {
	Type  uint16 // without the AF bit
	TV    bool
	Value []byte
}

// ESN transform IDs (RFC 7296 §3.3.2, transform type 5).
const (
	ESNNo  uint16 = 0
	ESNYes uint16 = 1
)

// KeyLength returns the Key Length attribute in bits, if present.
func (t Transform) KeyLength() (bits int, ok bool) {
	for _, a := range t.Attributes {
		if a.Type == AttrKeyLength && a.TV && len(a.Value) == 2 {
			return int(a.Value[0])<<8 | int(a.Value[1]), true
		}
	}
	return 0, false
}

// EncTransform is an encryption transform; keyBits 0 leaves the Key Length
// attribute out (as for ChaCha20-Poly1305, whose key size is fixed).
func EncTransform(alg sa.EncAlg, keyBits int) Transform {
	t := Transform{Type: sa.TransformENCR, ID: uint16(alg)}
	if keyBits != 0 {
		t.Attributes = []Attribute{{Type: AttrKeyLength, TV: true, Value: []byte{byte(keyBits >> 8), byte(keyBits)}}}
	}
	return t
}

// PRFTransform, IntegTransform, KETransform and ESNTransform build the
// other transform types.
func PRFTransform(alg sa.PRFAlg) Transform {
	return Transform{Type: sa.TransformPRF, ID: uint16(alg)}
}
func IntegTransform(alg sa.IntegAlg) Transform {
	return Transform{Type: sa.TransformINTEG, ID: uint16(alg)}
}
func KETransform(g sa.DHGroup) Transform { return Transform{Type: sa.TransformKE, ID: uint16(g)} }
func ESNTransform(esn bool) Transform {
	if esn {
		return Transform{Type: sa.TransformESN, ID: ESNYes}
	}
	return Transform{Type: sa.TransformESN, ID: ESNNo}
}

// KE is the Key Exchange payload (RFC 7296 §3.4).
type KE struct {
	Group sa.DHGroup
	Data  []byte
}

// ID is the Identification payload, IDi or IDr (RFC 7296 §3.5).
type ID struct {
	Responder bool // IDr when set, IDi otherwise
	IDType    IDType
	Data      []byte
}

// Body returns the payload body (ID type, three reserved bytes, data),
// which is what the AUTH computation signs as RestOfIDPayload (§2.15).
func (p *ID) Body() []byte {
	return append([]byte{byte(p.IDType), 0, 0, 0}, p.Data...)
}

// Cert is the Certificate payload (RFC 7296 §3.6).
type Cert struct {
	Encoding uint8
	Data     []byte
}

// CertReq is the Certificate Request payload (RFC 7296 §3.7).
type CertReq struct {
	Encoding uint8
	Data     []byte // concatenated SHA-1 hashes of CA public keys for X.509
}

// Auth is the Authentication payload (RFC 7296 §3.8).
type Auth struct {
	Method AuthMethod
	Data   []byte
}

// Nonce is the Nonce payload (RFC 7296 §3.9): 16 to 256 bytes.
type Nonce struct {
	Data []byte
}

// Nonce size bounds (RFC 7296 §3.9).
const (
	MinNonceSize = 16
	MaxNonceSize = 256
)

// Notify is the Notify payload (RFC 7296 §3.10).
type Notify struct {
	Protocol   ProtocolID
	SPI        []byte
	NotifyType NotifyType
	Data       []byte
}

// Delete is the Delete payload (RFC 7296 §3.11). For IKE it carries no
// SPI; for ESP and AH, 4-byte SPIs.
type Delete struct {
	Protocol ProtocolID
	SPIs     [][]byte
}

// VendorID is the Vendor ID payload (RFC 7296 §3.12).
type VendorID struct {
	Data []byte
}

// TrafficSelectors is the TSi or TSr payload (RFC 7296 §3.13).
type TrafficSelectors struct {
	Responder bool // TSr when set, TSi otherwise
	Selectors []TrafficSelector
}

// TrafficSelector is one address range with protocol and port range
// (RFC 7296 §3.13.1). Start and End are both IPv4 or both IPv6; the type
// on the wire follows from them. IPProtocol 0 means any protocol.
type TrafficSelector struct {
	IPProtocol uint8
	StartPort  uint16
	EndPort    uint16
	Start      netip.Addr
	End        netip.Addr
}

// Encrypted is the Encrypted and Authenticated payload, SK (RFC 7296
// §3.14). The codec handles only its framing: Data is IV, ciphertext and
// ICV as they are on the wire, and NextPayload is the type of the first
// payload inside. SK is always the last payload of a message.
type Encrypted struct {
	NextPayload PayloadType
	Data        []byte
}

// Fragment is the Encrypted Fragment payload, SKF (RFC 7383 §2.5).
// NextPayload is set in fragment 1 only.
type Fragment struct {
	Number      uint16
	Total       uint16
	NextPayload PayloadType
	Data        []byte
}

// Config is the Configuration payload, CP (RFC 7296 §3.15).
type Config struct {
	CfgType    CfgType
	Attributes []ConfigAttribute
}

// ConfigAttribute is one configuration attribute (RFC 7296 §3.15.1).
type ConfigAttribute struct {
	Type  uint16 // 15 bits
	Value []byte
}

// EAP is the EAP payload (RFC 7296 §3.16), carried opaquely.
type EAP struct {
	Data []byte
}

func (*SA) Type() PayloadType       { return PayloadSA }
func (*KE) Type() PayloadType       { return PayloadKE }
func (*Cert) Type() PayloadType     { return PayloadCERT }
func (*CertReq) Type() PayloadType  { return PayloadCERTREQ }
func (*Auth) Type() PayloadType     { return PayloadAUTH }
func (*Nonce) Type() PayloadType    { return PayloadNonce }
func (*Notify) Type() PayloadType   { return PayloadNotify }
func (*Delete) Type() PayloadType   { return PayloadDelete }
func (*VendorID) Type() PayloadType { return PayloadVendorID }
func (*Encrypted) Type() PayloadType {
	return PayloadSK
}
func (*Fragment) Type() PayloadType { return PayloadSKF }
func (*Config) Type() PayloadType   { return PayloadCP }
func (*EAP) Type() PayloadType      { return PayloadEAP }
func (p *ID) Type() PayloadType {
	if p.Responder {
		return PayloadIDr
	}
	return PayloadIDi
}
func (p *TrafficSelectors) Type() PayloadType {
	if p.Responder {
		return PayloadTSr
	}
	return PayloadTSi
}

// --- marshalling of bodies ---

func (p *SA) marshalBody(b *cryptobyte.Builder) {
	for i, pr := range p.Proposals {
		var body cryptobyte.Builder
		body.AddUint8(pr.Number)
		body.AddUint8(uint8(pr.Protocol))
		if len(pr.SPI) > 255 || len(pr.Transforms) > 255 {
			b.SetError(fmt.Errorf("proposal %d: SPI or transform count too large", pr.Number))
			return
		}
		body.AddUint8(uint8(len(pr.SPI)))
		body.AddUint8(uint8(len(pr.Transforms)))
		body.AddBytes(pr.SPI)
		for j, t := range pr.Transforms {
			var tb cryptobyte.Builder
			tb.AddUint8(uint8(t.Type))
			tb.AddUint8(0)
			tb.AddUint16(t.ID)
			for _, a := range t.Attributes {
				if a.TV {
					if len(a.Value) != 2 {
						b.SetError(fmt.Errorf("TV attribute %d: value must be 2 bytes", a.Type))
						return
					}
					tb.AddUint16(0x8000 | a.Type&0x7fff)
					tb.AddBytes(a.Value)
				} else {
					tb.AddUint16(a.Type & 0x7fff)
					tb.AddUint16LengthPrefixed(func(v *cryptobyte.Builder) { v.AddBytes(a.Value) })
				}
			}
			addSubstructure(&body, j == len(pr.Transforms)-1, 3, &tb)
		}
		addSubstructure(b, i == len(p.Proposals)-1, 2, &body)
	}
}

// addSubstructure writes a proposal or transform: "last substruc" (0 for
// the last one, more otherwise), reserved byte, length including this
// 4-byte header, body.
func addSubstructure(b *cryptobyte.Builder, last bool, more uint8, body *cryptobyte.Builder) {
	raw, err := body.Bytes()
	if err != nil {
		b.SetError(err)
		return
	}
	if len(raw)+4 > 0xffff {
		b.SetError(fmt.Errorf("substructure too long"))
		return
	}
	if last {
		b.AddUint8(0)
	} else {
		b.AddUint8(more)
	}
	b.AddUint8(0)
	b.AddUint16(uint16(len(raw) + 4))
	b.AddBytes(raw)
}

func (p *KE) marshalBody(b *cryptobyte.Builder) {
	b.AddUint16(uint16(p.Group))
	b.AddUint16(0)
	b.AddBytes(p.Data)
}

func (p *ID) marshalBody(b *cryptobyte.Builder) { b.AddBytes(p.Body()) }

func (p *Cert) marshalBody(b *cryptobyte.Builder) {
	b.AddUint8(p.Encoding)
	b.AddBytes(p.Data)
}

func (p *CertReq) marshalBody(b *cryptobyte.Builder) {
	b.AddUint8(p.Encoding)
	b.AddBytes(p.Data)
}

func (p *Auth) marshalBody(b *cryptobyte.Builder) {
	b.AddUint8(uint8(p.Method))
	b.AddBytes([]byte{0, 0, 0})
	b.AddBytes(p.Data)
}

func (p *Nonce) marshalBody(b *cryptobyte.Builder) { b.AddBytes(p.Data) }

func (p *Notify) marshalBody(b *cryptobyte.Builder) {
	if len(p.SPI) > 255 {
		b.SetError(fmt.Errorf("notify SPI too long"))
		return
	}
	b.AddUint8(uint8(p.Protocol))
	b.AddUint8(uint8(len(p.SPI)))
	b.AddUint16(uint16(p.NotifyType))
	b.AddBytes(p.SPI)
	b.AddBytes(p.Data)
}

func (p *Delete) marshalBody(b *cryptobyte.Builder) {
	size := deleteSPISize(p.Protocol)
	if len(p.SPIs) > 0xffff {
		b.SetError(fmt.Errorf("too many SPIs in delete"))
		return
	}
	b.AddUint8(uint8(p.Protocol))
	b.AddUint8(uint8(size))
	b.AddUint16(uint16(len(p.SPIs)))
	for _, spi := range p.SPIs {
		if len(spi) != size {
			b.SetError(fmt.Errorf("delete %v: SPI of %d bytes, want %d", p.Protocol, len(spi), size))
			return
		}
		b.AddBytes(spi)
	}
}

// deleteSPISize is the SPI size a Delete payload uses for a protocol
// (RFC 7296 §3.11): none for the IKE SA itself, 4 bytes for ESP and AH.
func deleteSPISize(p ProtocolID) int {
	if p == ProtoIKE {
		return 0
	}
	return 4
}

func (p *VendorID) marshalBody(b *cryptobyte.Builder) { b.AddBytes(p.Data) }

func (p *TrafficSelectors) marshalBody(b *cryptobyte.Builder) {
	if len(p.Selectors) > 255 {
		b.SetError(fmt.Errorf("too many traffic selectors"))
		return
	}
	b.AddUint8(uint8(len(p.Selectors)))
	b.AddBytes([]byte{0, 0, 0})
	for _, ts := range p.Selectors {
		var typ TSType
		switch {
		case ts.Start.Is4() && ts.End.Is4():
			typ = TSIPv4AddrRange
		case ts.Start.Is6() && ts.End.Is6() && !ts.Start.Is4In6() && !ts.End.Is4In6():
			typ = TSIPv6AddrRange
		default:
			b.SetError(fmt.Errorf("traffic selector %v-%v: addresses of one family required", ts.Start, ts.End))
			return
		}
		start, end := ts.Start.AsSlice(), ts.End.AsSlice()
		b.AddUint8(uint8(typ))
		b.AddUint8(ts.IPProtocol)
		b.AddUint16(uint16(8 + 2*len(start)))
		b.AddUint16(ts.StartPort)
		b.AddUint16(ts.EndPort)
		b.AddBytes(start)
		b.AddBytes(end)
	}
}

func (p *Encrypted) marshalBody(b *cryptobyte.Builder) { b.AddBytes(p.Data) }

func (p *Fragment) marshalBody(b *cryptobyte.Builder) {
	b.AddUint16(p.Number)
	b.AddUint16(p.Total)
	b.AddBytes(p.Data)
}

func (p *Config) marshalBody(b *cryptobyte.Builder) {
	b.AddUint8(uint8(p.CfgType))
	b.AddBytes([]byte{0, 0, 0})
	for _, a := range p.Attributes {
		b.AddUint16(a.Type & 0x7fff)
		b.AddUint16LengthPrefixed(func(v *cryptobyte.Builder) { v.AddBytes(a.Value) })
	}
}

func (p *EAP) marshalBody(b *cryptobyte.Builder) { b.AddBytes(p.Data) }
