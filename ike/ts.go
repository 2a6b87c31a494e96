package ike

import (
	"net/netip"

	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/policy"
)

func tsToWire(sels []policy.Selector, responder bool) *message.TrafficSelectors {
	p := &message.TrafficSelectors{Responder: responder}
	for _, s := range sels {
		p.Selectors = append(p.Selectors, message.TrafficSelector{
			IPProtocol: s.Proto, StartPort: s.PortStart, EndPort: s.PortEnd, Start: s.Start, End: s.End,
		})
	}
	return p
}

func tsFromWire(p *message.TrafficSelectors) []policy.Selector {
	var out []policy.Selector
	for _, t := range p.Selectors {
		out = append(out, policy.Selector{Start: t.Start, End: t.End, Proto: t.IPProtocol, PortStart: t.StartPort, PortEnd: t.EndPort})
	}
	return out
}

// intersect is the part of traffic both selectors cover; ok is false if
// they share none. OPAQUE port ranges meet only an identical OPAQUE.
func intersect(a, b policy.Selector) (policy.Selector, bool) {
	if a.Start.Is4() != b.Start.Is4() {
		return policy.Selector{}, false
	}
	var r policy.Selector
	r.Start, r.End = maxAddr(a.Start, b.Start), minAddr(a.End, b.End)
	if r.Start.Compare(r.End) > 0 {
		return policy.Selector{}, false
	}
	switch {
	case a.Proto == b.Proto || b.Proto == 0:
		r.Proto = a.Proto
	case a.Proto == 0:
		r.Proto = b.Proto
	default:
		return policy.Selector{}, false
	}
	if a.Opaque() || b.Opaque() {
		if a.PortStart != b.PortStart || a.PortEnd != b.PortEnd {
			return policy.Selector{}, false
		}
		r.PortStart, r.PortEnd = a.PortStart, a.PortEnd
		return r, true
	}
	r.PortStart, r.PortEnd = max(a.PortStart, b.PortStart), min(a.PortEnd, b.PortEnd)
	if r.PortStart > r.PortEnd {
		return policy.Selector{}, false
	}
	return r, true
}

// narrow is the responder's narrowing (RFC 7296 §2.9): every part of
// what the initiator proposed that our configuration also allows.
func narrow(proposed, allowed []policy.Selector) []policy.Selector {
	var out []policy.Selector
	for _, p := range proposed {
		for _, a := range allowed {
			if r, ok := intersect(p, a); ok {
				out = append(out, r)
			}
		}
	}
	return out
}

// within reports whether every selector the responder returned lies inside
// one we proposed, as the initiator must check.
func within(got, proposed []policy.Selector) bool {
	for _, g := range got {
		ok := false
		for _, p := range proposed {
			if r, hit := intersect(g, p); hit && r == g {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return len(got) > 0
}

func maxAddr(a, b netip.Addr) netip.Addr {
	if a.Compare(b) >= 0 {
		return a
	}
	return b
}

func minAddr(a, b netip.Addr) netip.Addr {
	if a.Compare(b) <= 0 {
		return a
	}
	return b
}
