// Package message is the IKEv2 wire codec (RFC 7296 §3, RFC 7383): it
// turns datagrams into typed payloads and back, with strict bounds checks
// on every length field. It does no cryptography: the body of an SK
// payload is carried as bytes and sealed or opened by the ike package.
package message

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// HeaderSize is the size of the fixed IKE header (RFC 7296 §3.1).
const HeaderSize = 28

// genericHeaderSize is the size of the generic payload header (§3.2).
const genericHeaderSize = 4

// Version is the only major.minor version spoken: 2.0.
const (
	MajorVersion = 2
	MinorVersion = 0
)

// ErrMalformed marks a message that breaks the syntax of RFC 7296; a
// responder answers it with INVALID_SYNTAX (or drops it before the IKE SA
// is authenticated).
var ErrMalformed = errors.New("malformed IKE message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// UnsupportedCriticalPayloadError reports a payload of unknown type with
// the critical bit set; the message must be rejected and answered with
// UNSUPPORTED_CRITICAL_PAYLOAD carrying Type (RFC 7296 §2.5).
type UnsupportedCriticalPayloadError struct {
	Type PayloadType
}

func (e *UnsupportedCriticalPayloadError) Error() string {
	return fmt.Sprintf("unsupported critical payload type %d", uint8(e.Type))
}

// InvalidMajorVersionError reports a header with a major version other
// than 2 (answered with INVALID_MAJOR_VERSION, RFC 7296 §2.5).
type InvalidMajorVersionError struct {
	Major uint8
}

func (e *InvalidMajorVersionError) Error() string {
	return fmt.Sprintf("IKE major version %d, want %d", e.Major, MajorVersion)
}

// Header is the fixed IKE header (RFC 7296 §3.1) without its version
// (always 2.0 when sent, major checked on receipt) and length (computed).
type Header struct {
	SPIi        uint64
	SPIr        uint64
	NextPayload PayloadType // as read; computed when marshalling
	Exchange    ExchangeType
	Flags       Flags
	MessageID   uint32
	Length      uint32 // as read; ignored when marshalling
}

// ParseHeader decodes the fixed header and checks that its length field
// matches the datagram, so that callers can route a message by SPI and
// message ID before parsing its payloads.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, malformed("%d bytes, shorter than the IKE header", len(b))
	}
	h.SPIi = binary.BigEndian.Uint64(b[0:8])
	h.SPIr = binary.BigEndian.Uint64(b[8:16])
	h.NextPayload = PayloadType(b[16])
	if major := b[17] >> 4; major != MajorVersion {
		return h, &InvalidMajorVersionError{Major: major}
	}
	h.Exchange = ExchangeType(b[18])
	h.Flags = Flags(b[19]) & knownFlags
	h.MessageID = binary.BigEndian.Uint32(b[20:24])
	h.Length = binary.BigEndian.Uint32(b[24:28])
	if int64(h.Length) != int64(len(b)) {
		return h, malformed("header length %d, datagram %d bytes", h.Length, len(b))
	}
	return h, nil
}

// Message is an IKEv2 message: its header and its payloads in order. If
// an Encrypted (SK) or Fragment (SKF) payload is present, it is the last.
type Message struct {
	Header
	Payloads []Payload
}

// Parse decodes a whole IKE message. Unknown payloads are skipped unless
// critical, which yields *UnsupportedCriticalPayloadError. Payload data
// are copies: b may be reused after Parse returns.
func Parse(b []byte) (*Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	ps, err := parseChain(h.NextPayload, b[HeaderSize:], true)
	if err != nil {
		return nil, fmt.Errorf("%v message %d: %w", h.Exchange, h.MessageID, err)
	}
	return &Message{Header: h, Payloads: ps}, nil
}

// ParsePayloads decodes a chain of payloads that starts with type first,
// such as the decrypted content of an SK payload. Encrypted payloads are
// not allowed inside it.
func ParsePayloads(first PayloadType, b []byte) ([]Payload, error) {
	return parseChain(first, b, false)
}

func parseChain(next PayloadType, b []byte, outer bool) ([]Payload, error) {
	var ps []Payload
	s := cryptobyte.String(b)
	for next != PayloadNone {
		var nn, crit uint8
		var length uint16
		if !s.ReadUint8(&nn) || !s.ReadUint8(&crit) || !s.ReadUint16(&length) {
			return nil, malformed("truncated header of %v payload", next)
		}
		if length < genericHeaderSize {
			return nil, malformed("%v payload length %d, shorter than its header", next, length)
		}
		var body []byte
		if !s.ReadBytes(&body, int(length)-genericHeaderSize) {
			return nil, malformed("%v payload length %d overruns the message", next, length)
		}
		p, known, err := parseBody(next, body)
		if err != nil {
			return nil, fmt.Errorf("%v payload: %w", next, err)
		}
		if !known {
			if crit&0x80 != 0 {
				return nil, &UnsupportedCriticalPayloadError{Type: next}
			}
			next = PayloadType(nn)
			continue // RFC 7296 §2.5: skip non-critical payloads we do not know
		}
		switch e := p.(type) {
		case *Encrypted:
			e.NextPayload = PayloadType(nn)
		case *Fragment:
			e.NextPayload = PayloadType(nn)
			if e.Number != 1 && e.NextPayload != PayloadNone {
				return nil, malformed("SKF fragment %d with next payload %v", e.Number, e.NextPayload)
			}
		}
		ps = append(ps, p)
		if t := p.Type(); t == PayloadSK || t == PayloadSKF {
			// The next-payload field of SK/SKF names the first payload
			// inside, so the chain ends here and nothing may follow.
			if !outer {
				return nil, malformed("%v payload inside an encrypted payload", t)
			}
			if len(s) != 0 {
				return nil, malformed("%d bytes after the %v payload, which must be last", len(s), t)
			}
			return ps, nil
		}
		next = PayloadType(nn)
	}
	if len(s) != 0 {
		return nil, malformed("%d bytes after the last payload", len(s))
	}
	return ps, nil
}

// Marshal encodes the message with version 2.0 and the length computed.
func (m *Message) Marshal() ([]byte, error) {
	first, body, err := marshalChain(m.Payloads, true)
	if err != nil {
		return nil, fmt.Errorf("marshal %v message %d: %w", m.Exchange, m.MessageID, err)
	}
	total := HeaderSize + len(body)
	if total > 0xffffffff {
		return nil, fmt.Errorf("marshal %v message: too long", m.Exchange)
	}
	out := make([]byte, HeaderSize, total)
	binary.BigEndian.PutUint64(out[0:8], m.SPIi)
	binary.BigEndian.PutUint64(out[8:16], m.SPIr)
	out[16] = byte(first)
	out[17] = MajorVersion<<4 | MinorVersion
	out[18] = byte(m.Exchange)
	out[19] = byte(m.Flags & knownFlags)
	binary.BigEndian.PutUint32(out[20:24], m.MessageID)
	binary.BigEndian.PutUint32(out[24:28], uint32(total))
	return append(out, body...), nil
}

// MarshalPayloads encodes a payload chain without a header, as the
// plaintext of an SK payload; first is the type of its first payload.
func MarshalPayloads(ps []Payload) (first PayloadType, b []byte, err error) {
	return marshalChain(ps, false)
}

func marshalChain(ps []Payload, outer bool) (PayloadType, []byte, error) {
	var b cryptobyte.Builder
	for i, p := range ps {
		next := PayloadNone
		if i+1 < len(ps) {
			next = ps[i+1].Type()
		}
		switch e := p.(type) {
		case *Encrypted:
			if !outer || i != len(ps)-1 {
				return 0, nil, fmt.Errorf("SK payload must be the last payload of the outer message")
			}
			next = e.NextPayload
		case *Fragment:
			if !outer || i != len(ps)-1 {
				return 0, nil, fmt.Errorf("SKF payload must be the last payload of the outer message")
			}
			next = e.NextPayload
		}
		var body cryptobyte.Builder
		p.marshalBody(&body)
		raw, err := body.Bytes()
		if err != nil {
			return 0, nil, fmt.Errorf("%v payload: %w", p.Type(), err)
		}
		if len(raw)+genericHeaderSize > 0xffff {
			return 0, nil, fmt.Errorf("%v payload: %d bytes, too long", p.Type(), len(raw))
		}
		b.AddUint8(uint8(next))
		b.AddUint8(0) // critical bit clear: every payload we send is one we understand
		b.AddUint16(uint16(len(raw) + genericHeaderSize))
		b.AddBytes(raw)
	}
	raw, err := b.Bytes()
	if err != nil {
		return 0, nil, err
	}
	if len(ps) == 0 {
		return PayloadNone, raw, nil
	}
	return ps[0].Type(), raw, nil
}
