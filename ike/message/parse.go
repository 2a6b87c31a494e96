package message

import (
	"net/netip"

	"golang.org/x/crypto/cryptobyte"

	"github.com/isle-ipsec/isle/sa"
)

// clone copies b so that parsed payloads never alias the caller's
// receive buffer; empty becomes nil so that parse and marshal round-trip
// to identical structures.
func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// parseBody decodes the body of a payload of a known type. ok is false
// for types this codec does not know.
func parseBody(t PayloadType, body []byte) (p Payload, known bool, err error) {
	s := cryptobyte.String(body)
	switch t {
	case PayloadSA:
		p, err = parseSA(s)
	case PayloadKE:
		var g uint16
		if !s.ReadUint16(&g) || !s.Skip(2) {
			return nil, true, malformed("KE payload shorter than 4 bytes")
		}
		if len(s) == 0 {
			return nil, true, malformed("KE payload without key exchange data")
		}
		p = &KE{Group: sa.DHGroup(g), Data: clone(s)}
	case PayloadIDi, PayloadIDr:
		var typ uint8
		if !s.ReadUint8(&typ) || !s.Skip(3) {
			return nil, true, malformed("%v payload shorter than 4 bytes", t)
		}
		if len(s) == 0 {
			return nil, true, malformed("%v payload without identification data", t)
		}
		p = &ID{Responder: t == PayloadIDr, IDType: IDType(typ), Data: clone(s)}
	case PayloadCERT, PayloadCERTREQ:
		var enc uint8
		if !s.ReadUint8(&enc) {
			return nil, true, malformed("empty %v payload", t)
		}
		if t == PayloadCERT {
			p = &Cert{Encoding: enc, Data: clone(s)}
		} else {
			p = &CertReq{Encoding: enc, Data: clone(s)}
		}
	case PayloadAUTH:
		var m uint8
		if !s.ReadUint8(&m) || !s.Skip(3) {
			return nil, true, malformed("AUTH payload shorter than 4 bytes")
		}
		if len(s) == 0 {
			return nil, true, malformed("AUTH payload without authentication data")
		}
		p = &Auth{Method: AuthMethod(m), Data: clone(s)}
	case PayloadNonce:
		if len(s) < MinNonceSize || len(s) > MaxNonceSize {
			return nil, true, malformed("nonce of %d bytes, want %d to %d", len(s), MinNonceSize, MaxNonceSize)
		}
		p = &Nonce{Data: clone(s)}
	case PayloadNotify:
		var proto, spiSize uint8
		var typ uint16
		var spi []byte
		if !s.ReadUint8(&proto) || !s.ReadUint8(&spiSize) || !s.ReadUint16(&typ) || !s.ReadBytes(&spi, int(spiSize)) {
			return nil, true, malformed("truncated Notify payload")
		}
		p = &Notify{Protocol: ProtocolID(proto), SPI: clone(spi), NotifyType: NotifyType(typ), Data: clone(s)}
	case PayloadDelete:
		p, err = parseDelete(s)
	case PayloadVendorID:
		p = &VendorID{Data: clone(s)}
	case PayloadTSi, PayloadTSr:
		p, err = parseTS(s, t == PayloadTSr)
	case PayloadSK:
		p = &Encrypted{Data: clone(s)}
	case PayloadSKF:
		var f Fragment
		if !s.ReadUint16(&f.Number) || !s.ReadUint16(&f.Total) {
			return nil, true, malformed("SKF payload shorter than 4 bytes")
		}
		if f.Number == 0 || f.Total < f.Number {
			return nil, true, malformed("SKF fragment %d of %d", f.Number, f.Total)
		}
		f.Data = clone(s)
		p = &f
	case PayloadCP:
		p, err = parseCP(s)
	case PayloadEAP:
		p = &EAP{Data: clone(s)}
	default:
		return nil, false, nil
	}
	return p, true, err
}

func parseSA(s cryptobyte.String) (*SA, error) {
	var out SA
	if len(s) == 0 {
		return nil, malformed("SA payload without proposals")
	}
	for last := false; !last; {
		var length uint16
		var more uint8
		var body cryptobyte.String
		if !s.ReadUint8(&more) || !s.Skip(1) || !s.ReadUint16(&length) {
			return nil, malformed("truncated proposal header")
		}
		switch more {
		case 0:
			last = true
		case 2:
		default:
			return nil, malformed("proposal \"last substruc\" %d, want 0 or 2", more)
		}
		if length < 8 || !s.ReadBytes((*[]byte)(&body), int(length)-4) {
			return nil, malformed("proposal length %d overruns the SA payload", length)
		}
		pr, err := parseProposal(body)
		if err != nil {
			return nil, err
		}
		out.Proposals = append(out.Proposals, pr)
		if last != (len(s) == 0) {
			return nil, malformed("last proposal flag does not match the SA payload length")
		}
	}
	return &out, nil
}

func parseProposal(s cryptobyte.String) (Proposal, error) {
	var pr Proposal
	var proto, spiSize, numTransforms uint8
	var spi []byte
	if !s.ReadUint8(&pr.Number) || !s.ReadUint8(&proto) || !s.ReadUint8(&spiSize) ||
		!s.ReadUint8(&numTransforms) || !s.ReadBytes(&spi, int(spiSize)) {
		return pr, malformed("truncated proposal")
	}
	pr.Protocol = ProtocolID(proto)
	pr.SPI = clone(spi)
	switch pr.Protocol {
	case ProtoIKE:
		if spiSize != 0 && spiSize != 8 {
			return pr, malformed("IKE proposal with %d-byte SPI", spiSize)
		}
	case ProtoESP, ProtoAH:
		if spiSize != 4 {
			return pr, malformed("%v proposal with %d-byte SPI", pr.Protocol, spiSize)
		}
	}
	for i := 0; i < int(numTransforms); i++ {
		var lastByte uint8
		var length uint16
		var body cryptobyte.String
		if !s.ReadUint8(&lastByte) || !s.Skip(1) || !s.ReadUint16(&length) {
			return pr, malformed("truncated transform header")
		}
		if length < 8 || !s.ReadBytes((*[]byte)(&body), int(length)-4) {
			return pr, malformed("transform length %d overruns the proposal", length)
		}
		wantLast := i == int(numTransforms)-1
		if (lastByte == 0) != wantLast || (lastByte != 0 && lastByte != 3) {
			return pr, malformed("transform %d: \"last substruc\" %d inconsistent with count %d", i+1, lastByte, numTransforms)
		}
		t, err := parseTransform(body)
		if err != nil {
			return pr, err
		}
		pr.Transforms = append(pr.Transforms, t)
	}
	if len(s) != 0 {
		return pr, malformed("%d bytes after the last transform of proposal %d", len(s), pr.Number)
	}
	return pr, nil
}

func parseTransform(s cryptobyte.String) (Transform, error) {
	var t Transform
	var typ uint8
	if !s.ReadUint8(&typ) || !s.Skip(1) || !s.ReadUint16(&t.ID) {
		return t, malformed("truncated transform")
	}
	t.Type = sa.TransformType(typ)
	for len(s) > 0 {
		var at uint16
		if !s.ReadUint16(&at) {
			return t, malformed("truncated transform attribute")
		}
		a := Attribute{Type: at & 0x7fff, TV: at&0x8000 != 0}
		var v []byte
		if a.TV {
			if !s.ReadBytes(&v, 2) {
				return t, malformed("truncated TV attribute")
			}
		} else if !s.ReadUint16LengthPrefixed((*cryptobyte.String)(&v)) {
			return t, malformed("TLV attribute overruns the transform")
		}
		a.Value = clone(v)
		t.Attributes = append(t.Attributes, a)
	}
	return t, nil
}

func parseDelete(s cryptobyte.String) (*Delete, error) {
	var proto, spiSize uint8
	var n uint16
	if !s.ReadUint8(&proto) || !s.ReadUint8(&spiSize) || !s.ReadUint16(&n) {
		return nil, malformed("Delete payload shorter than 4 bytes")
	}
	d := &Delete{Protocol: ProtocolID(proto)}
	want := deleteSPISize(d.Protocol)
	if int(spiSize) != want {
		return nil, malformed("Delete %v with %d-byte SPIs, want %d", d.Protocol, spiSize, want)
	}
	if d.Protocol == ProtoIKE && n != 0 {
		return nil, malformed("Delete IKE with %d SPIs", n)
	}
	if len(s) != int(n)*want {
		return nil, malformed("Delete payload: %d SPIs of %d bytes in %d bytes", n, want, len(s))
	}
	for i := 0; i < int(n); i++ {
		var spi []byte
		s.ReadBytes(&spi, want)
		d.SPIs = append(d.SPIs, clone(spi))
	}
	return d, nil
}

func parseTS(s cryptobyte.String, responder bool) (*TrafficSelectors, error) {
	var n uint8
	if !s.ReadUint8(&n) || !s.Skip(3) {
		return nil, malformed("TS payload shorter than 4 bytes")
	}
	if n == 0 {
		return nil, malformed("TS payload without selectors")
	}
	out := &TrafficSelectors{Responder: responder}
	for i := 0; i < int(n); i++ {
		var typ, proto uint8
		var length uint16
		var ts TrafficSelector
		if !s.ReadUint8(&typ) || !s.ReadUint8(&proto) || !s.ReadUint16(&length) ||
			!s.ReadUint16(&ts.StartPort) || !s.ReadUint16(&ts.EndPort) {
			return nil, malformed("truncated traffic selector")
		}
		ts.IPProtocol = proto
		var alen int
		switch TSType(typ) {
		case TSIPv4AddrRange:
			alen = 4
		case TSIPv6AddrRange:
			alen = 16
		default:
			return nil, malformed("unsupported traffic selector type %d", typ)
		}
		if int(length) != 8+2*alen {
			return nil, malformed("traffic selector type %d with length %d", typ, length)
		}
		var start, end []byte
		if !s.ReadBytes(&start, alen) || !s.ReadBytes(&end, alen) {
			return nil, malformed("traffic selector overruns the TS payload")
		}
		ts.Start, _ = netip.AddrFromSlice(start)
		ts.End, _ = netip.AddrFromSlice(end)
		out.Selectors = append(out.Selectors, ts)
	}
	if len(s) != 0 {
		return nil, malformed("%d bytes after the last traffic selector", len(s))
	}
	return out, nil
}

func parseCP(s cryptobyte.String) (*Config, error) {
	var typ uint8
	if !s.ReadUint8(&typ) || !s.Skip(3) {
		return nil, malformed("CP payload shorter than 4 bytes")
	}
	c := &Config{CfgType: CfgType(typ)}
	for len(s) > 0 {
		var at uint16
		var v cryptobyte.String
		if !s.ReadUint16(&at) || !s.ReadUint16LengthPrefixed(&v) {
			return nil, malformed("configuration attribute overruns the CP payload")
		}
		c.Attributes = append(c.Attributes, ConfigAttribute{Type: at & 0x7fff, Value: clone(v)})
	}
	return c, nil
}
