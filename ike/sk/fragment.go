package sk

import (
	"fmt"

	"github.com/isle-ipsec/isle/ike/message"
)

// MaxFragments bounds how many fragments a message may be split into or
// reassembled from, so that a peer cannot make us hold unbounded state.
const MaxFragments = 64

// SealFragments seals inner like Seal but splits it over Encrypted
// Fragment payloads (RFC 7383 §2.5) so that no datagram exceeds maxLen
// bytes. m must carry no unencrypted payloads: a fragmented message holds
// nothing but its SKF payload.
func (c *Cipher) SealFragments(m *message.Message, inner []message.Payload, maxLen int) ([][]byte, error) {
	if len(m.Payloads) != 0 {
		return nil, fmt.Errorf("sk: fragmented %v message with unencrypted payloads", m.Exchange)
	}
	first, plain, err := message.MarshalPayloads(inner)
	if err != nil {
		return nil, fmt.Errorf("sk: seal %v: %w", m.Exchange, err)
	}
	chunk := maxLen - message.HeaderSize - 8 - c.Overhead() // 8: SKF generic header and numbers
	if chunk < 1 {
		return nil, fmt.Errorf("sk: fragment size %d leaves no room for data", maxLen)
	}
	total := (len(plain) + chunk - 1) / chunk
	if total > MaxFragments {
		return nil, fmt.Errorf("sk: %d-byte message needs %d fragments of %d, more than %d", len(plain), total, maxLen, MaxFragments)
	}
	out := make([][]byte, 0, total)
	for i := 0; i < total; i++ {
		part := plain[i*chunk : min((i+1)*chunk, len(plain))]
		next := message.PayloadNone
		if i == 0 {
			next = first
		}
		b, err := c.seal(m, part, func(data []byte) message.Payload {
			return &message.Fragment{Number: uint16(i + 1), Total: uint16(total), NextPayload: next, Data: data}
		})
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// OpenFragment verifies and decrypts the SKF payload of m, parsed from
// raw, and returns the fragment with its decrypted content.
func (c *Cipher) OpenFragment(raw []byte, m *message.Message) (*message.Fragment, []byte, error) {
	if len(m.Payloads) != 1 {
		return nil, nil, fmt.Errorf("%w: fragment message with %d payloads", message.ErrMalformed, len(m.Payloads))
	}
	f, ok := m.Payloads[0].(*message.Fragment)
	if !ok {
		return nil, nil, fmt.Errorf("sk: %v message without an SKF payload", m.Exchange)
	}
	plain, err := c.open(raw, f.Data)
	if err != nil {
		return nil, nil, err
	}
	return f, plain, nil
}

// Reassembly collects the decrypted fragments of one message (RFC 7383
// §2.6). The zero value is ready to use.
type Reassembly struct {
	total uint16
	first message.PayloadType
	parts map[uint16][]byte
}

// Add records one authenticated fragment. It reports whether the message
// is complete. A fragment announcing a larger total than the ones before
// restarts the reassembly (the peer retransmitted with smaller fragments,
// §2.6.1); one announcing a smaller total is refused.
func (r *Reassembly) Add(f *message.Fragment, plain []byte) (bool, error) {
	switch {
	case f.Total == 0 || f.Number == 0 || f.Number > f.Total:
		return false, fmt.Errorf("%w: fragment %d of %d", message.ErrMalformed, f.Number, f.Total)
	case f.Total > MaxFragments:
		return false, fmt.Errorf("sk: %d fragments, more than %d", f.Total, MaxFragments)
	case f.Total < r.total:
		return false, fmt.Errorf("sk: fragment of %d after fragments of %d", f.Total, r.total)
	case f.Total > r.total:
		*r = Reassembly{total: f.Total, parts: map[uint16][]byte{}}
	}
	if _, dup := r.parts[f.Number]; dup {
		return r.complete(), nil
	}
	if f.Number == 1 {
		r.first = f.NextPayload
	}
	r.parts[f.Number] = append([]byte(nil), plain...)
	return r.complete(), nil
}

func (r *Reassembly) complete() bool { return r.total != 0 && len(r.parts) == int(r.total) }

// Payloads parses the reassembled message once Add reported it complete.
func (r *Reassembly) Payloads() ([]message.Payload, error) {
	if !r.complete() {
		return nil, fmt.Errorf("sk: reassembly incomplete: %d of %d fragments", len(r.parts), r.total)
	}
	var plain []byte
	for i := uint16(1); i <= r.total; i++ {
		plain = append(plain, r.parts[i]...)
	}
	ps, err := message.ParsePayloads(r.first, plain)
	if err != nil {
		return nil, fmt.Errorf("sk: reassembled message: %w", err)
	}
	return ps, nil
}
