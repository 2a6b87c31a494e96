package ike

import (
	"errors"
	"fmt"
	"slices"

	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/sa"
)

// suite is what an SA negotiation settled on: one transform of each type.
// dh is DHNone for a CHILD_SA without PFS; integ is IntegNone with AEAD.
type suite struct {
	proto sa.Protocol
	enc   sa.Encr
	integ sa.IntegAlg
	prf   sa.PRFAlg
	dh    sa.DHGroup
	esn   sa.ESNMode
}

func (s suite) String() string {
	p := sa.Proposal{Protocol: s.proto, PRF: nil}
	if s.enc.Alg != 0 {
		p.Encr = []sa.Encr{s.enc}
	}
	if s.integ != sa.IntegNone {
		p.Integ = []sa.IntegAlg{s.integ}
	}
	if s.prf != 0 {
		p.PRF = []sa.PRFAlg{s.prf}
	}
	if s.dh != sa.DHNone {
		p.DH = []sa.DHGroup{s.dh}
	}
	if s.proto != sa.ProtoIKE {
		p.ESN = []sa.ESNMode{s.esn}
	}
	return p.String()
}

// wireKeyBits is the Key Length attribute sent for a cipher: AES needs
// one; ChaCha20-Poly1305 and NULL have fixed keys and carry none.
func wireKeyBits(e sa.Encr) int {
	if e.Alg == sa.EncAESCBC || e.Alg == sa.EncAESGCM16 {
		return e.KeyBits
	}
	return 0
}

// encrFromWire is the inverse of wireKeyBits; ok is false for a cipher or
// key length we do not implement.
func encrFromWire(t message.Transform) (sa.Encr, bool) {
	alg := sa.EncAlg(t.ID)
	bits, has := t.KeyLength()
	if len(t.Attributes) > 1 || (len(t.Attributes) == 1 && !has) {
		return sa.Encr{}, false // an attribute we do not understand (RFC 7296 §3.3.6)
	}
	switch alg {
	case sa.EncAESCBC, sa.EncAESGCM16:
		if !has {
			return sa.Encr{}, false
		}
	case sa.EncChaCha20Poly1305:
		if has {
			return sa.Encr{}, false
		}
		bits = 256
	case sa.EncNull:
		if has {
			return sa.Encr{}, false
		}
	default:
		return sa.Encr{}, false
	}
	if !alg.KeyBitsOK(bits) {
		return sa.Encr{}, false
	}
	return sa.Encr{Alg: alg, KeyBits: bits}, true
}

// proposalsToWire lists our proposals as an SA payload, numbered from 1.
func proposalsToWire(ps []sa.Proposal, spi []byte) *message.SA {
	out := &message.SA{}
	for i, p := range ps {
		wp := message.Proposal{Number: uint8(i + 1), Protocol: message.ProtocolFromSA(p.Protocol), SPI: spi}
		for _, e := range p.Encr {
			wp.Transforms = append(wp.Transforms, message.EncTransform(e.Alg, wireKeyBits(e)))
		}
		for _, a := range p.PRF {
			wp.Transforms = append(wp.Transforms, message.PRFTransform(a))
		}
		for _, a := range p.Integ {
			wp.Transforms = append(wp.Transforms, message.IntegTransform(a))
		}
		for _, g := range p.DH {
			wp.Transforms = append(wp.Transforms, message.KETransform(g))
		}
		for _, m := range p.ESN {
			wp.Transforms = append(wp.Transforms, message.ESNTransform(m == sa.WithESN))
		}
		out.Proposals = append(out.Proposals, wp)
	}
	return out
}

// suiteToWire is the single-transform proposal a responder returns.
func suiteToWire(s suite, number uint8, spi []byte) *message.SA {
	p := sa.Proposal{Protocol: s.proto, Encr: nil}
	if s.enc.Alg != 0 {
		p.Encr = []sa.Encr{s.enc}
	}
	if s.integ != sa.IntegNone {
		p.Integ = []sa.IntegAlg{s.integ}
	}
	if s.prf != 0 {
		p.PRF = []sa.PRFAlg{s.prf}
	}
	if s.dh != sa.DHNone {
		p.DH = []sa.DHGroup{s.dh}
	}
	if s.proto != sa.ProtoIKE {
		p.ESN = []sa.ESNMode{s.esn}
	}
	w := proposalsToWire([]sa.Proposal{p}, spi)
	w.Proposals[0].Number = number
	return w
}

var errNoProposal = errors.New("no proposal chosen")

// pick is one transform type's choice: the first of ours (in our order of
// preference) that the peer offers. Neither side listing the type means
// the type is absent; only one side listing it is a mismatch, except a
// peer's explicit NONE for the KE type of a CHILD_SA.
func pick[T comparable](ours []T, theirs []T, none T) (T, bool) {
	if len(ours) == 0 {
		if len(theirs) == 0 || slices.Contains(theirs, none) {
			return none, true
		}
		return none, false
	}
	for _, o := range ours {
		if slices.Contains(theirs, o) {
			return o, true
		}
	}
	return none, false
}

// matchProposal matches one proposal of the peer against one of ours.
func matchProposal(ours sa.Proposal, theirs message.Proposal) (suite, bool) {
	if proto, ok := theirs.Protocol.SA(); !ok || proto != ours.Protocol {
		return suite{}, false
	}
	var encs []sa.Encr
	var integs []sa.IntegAlg
	var prfs []sa.PRFAlg
	var dhs []sa.DHGroup
	var esns []sa.ESNMode
	for _, t := range theirs.Transforms {
		switch t.Type {
		case sa.TransformENCR:
			if e, ok := encrFromWire(t); ok {
				encs = append(encs, e)
			} else if len(encs) == 0 {
				encs = append(encs, sa.Encr{Alg: sa.EncAlg(0xffff)}) // present but unusable
			}
		case sa.TransformINTEG:
			integs = append(integs, sa.IntegAlg(t.ID))
		case sa.TransformPRF:
			prfs = append(prfs, sa.PRFAlg(t.ID))
		case sa.TransformKE:
			dhs = append(dhs, sa.DHGroup(t.ID))
		case sa.TransformESN:
			esns = append(esns, sa.ESNMode(t.ID))
		default:
			return suite{}, false // a transform type we do not know: skip the proposal
		}
	}
	s := suite{proto: ours.Protocol}
	var ok [5]bool
	s.enc, ok[0] = pick(ours.Encr, encs, sa.Encr{})
	s.integ, ok[1] = pick(ours.Integ, integs, sa.IntegNone)
	s.prf, ok[2] = pick(ours.PRF, prfs, 0)
	s.dh, ok[3] = pick(ours.DH, dhs, sa.DHNone)
	s.esn, ok[4] = pick(ours.ESN, esns, sa.NoESN)
	if ours.Protocol != sa.ProtoIKE && len(ours.ESN) == 0 {
		s.esn, ok[4] = sa.NoESN, len(esns) == 0 || slices.Contains(esns, sa.NoESN)
	}
	for _, k := range ok {
		if !k {
			return suite{}, false
		}
	}
	return s, true
}

// selectProposal is the responder's choice (RFC 7296 §2.7): our proposals
// in our order of preference, each against the peer's in theirs.
func selectProposal(ours []sa.Proposal, theirs *message.SA) (suite, message.Proposal, error) {
	for _, o := range ours {
		for _, t := range theirs.Proposals {
			if s, ok := matchProposal(o, t); ok {
				return s, t, nil
			}
		}
	}
	return suite{}, message.Proposal{}, errNoProposal
}

// checkAccepted is the initiator's check of the responder's answer: one
// proposal, one transform per type, and within the proposal we sent under
// that number.
func checkAccepted(ours []sa.Proposal, answer *message.SA) (suite, message.Proposal, error) {
	if len(answer.Proposals) != 1 {
		return suite{}, message.Proposal{}, fmt.Errorf("responder returned %d proposals, want 1", len(answer.Proposals))
	}
	p := answer.Proposals[0]
	n := int(p.Number)
	if n < 1 || n > len(ours) {
		return suite{}, message.Proposal{}, fmt.Errorf("responder accepted proposal %d, we sent %d", n, len(ours))
	}
	seen := map[sa.TransformType]bool{}
	for _, t := range p.Transforms {
		if seen[t.Type] {
			return suite{}, message.Proposal{}, fmt.Errorf("responder returned two %v transforms", t.Type)
		}
		seen[t.Type] = true
	}
	s, ok := matchProposal(ours[n-1], p)
	if !ok {
		return suite{}, message.Proposal{}, fmt.Errorf("responder's choice %v is not what we proposed", p.Transforms)
	}
	return s, p, nil
}
